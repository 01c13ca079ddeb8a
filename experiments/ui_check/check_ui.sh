#!/usr/bin/env bash
# Start `labkit ui` on an MLflow store, screenshot its pages with headless Chromium, stop it.
#
#   experiments/ui_check/check_ui.sh [STORE_DB] [OUT_DIR]
#   (defaults: /tmp/exp/mlflow.db and this script's folder; needs Debian's `chromium`)
#
# Pages (experiment 'labkit'): the runs table; the model-metrics charts of the newest sunspots run
# (no per-class F1 charts, so the test, train and val groups fit one tall window); the artifacts tab
# of the newest digits run with its test confusion matrix opened; the chart view comparing all runs.
# RUN_ID=... picks one run for both run pages; BUDGET=30000 gives slow pages more virtual time (ms). PNGs are downscaled (1200 px wide, 800 for the tall one).
set -euo pipefail

STORE=${1:-/tmp/exp/mlflow.db}
OUT=${2:-$(cd "$(dirname "$0")" && pwd)}
PORT=${PORT:-5055}
VENV=${VENV:-/work/venv}
URI="sqlite:///${STORE}"
BASE="http://127.0.0.1:${PORT}"
mkdir -p "$OUT"

if curl -s "$BASE/" >/dev/null 2>&1; then echo "port $PORT is in use: stop that server or set PORT=..." >&2; exit 1; fi
# Its own process group, so that cleanup can stop `labkit ui` and the `mlflow server` it starts (with its
# workers) in one signal, even if `labkit ui` itself were killed hard.
setsid "$VENV/bin/labkit" ui --tracking-uri "$URI" --port "$PORT" >/tmp/labkit_ui.log 2>&1 &
UI_PID=$!
PROFILE=$(mktemp -d)
cleanup() {
  kill -- "-$UI_PID" 2>/dev/null || true
  wait "$UI_PID" 2>/dev/null || true
  for _ in $(seq 1 30); do curl -s "$BASE/" >/dev/null 2>&1 || break; sleep 1; done  # the server takes a few s
  rm -rf "$PROFILE"
}
trap cleanup EXIT

for _ in $(seq 1 120); do  # the server needs a few seconds (more on a busy machine)
  curl -sf "$BASE/health" >/dev/null 2>&1 && break
  sleep 1
done
curl -sf "$BASE/health" >/dev/null || { echo "labkit ui did not answer on $BASE" >&2; cat /tmp/labkit_ui.log >&2; exit 1; }

read -r EXP_ID RUN CURVES_RUN < <("$VENV/bin/python" - "$URI" "${RUN_ID:-}" <<'PY'
import sys
import mlflow
client = mlflow.MlflowClient(sys.argv[1])
exp = client.get_experiment_by_name("labkit")
def newest(data_name):
    runs = client.search_runs([exp.experiment_id], f"params.`data.name` = '{data_name}'", max_results=1,
                              order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None
run_id = sys.argv[2] or newest("digits")
print(exp.experiment_id, run_id, sys.argv[2] or newest("sunspots") or run_id)
PY
)
echo "experiment $EXP_ID, run $RUN, curves of run $CURVES_RUN"

shot() {  # shot NAME URL [HEIGHT]
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$PROFILE" --window-size=1600,"${3:-1000}" \
    --virtual-time-budget="${BUDGET:-15000}" --screenshot="$OUT/$1.png" "$2" >/tmp/chromium_shot.log 2>&1
  [[ -s "$OUT/$1.png" ]] || { echo "no screenshot $1" >&2; tail -5 /tmp/chromium_shot.log >&2; exit 1; }
  echo "$OUT/$1.png  <-  $2"
}
shot runs_table "$BASE/#/experiments/$EXP_ID/runs"
# tall, and a run without per-class F1 charts, so that the test, train and val groups all show
shot run_metrics "$BASE/#/experiments/$EXP_ID/runs/$CURVES_RUN/model-metrics" 2400
shot run_artifacts "$BASE/#/experiments/$EXP_ID/runs/$RUN/artifacts/figures/confusion_matrix_test.png"
shot runs_charts "$BASE/#/experiments/$EXP_ID/runs?compareRunsMode=CHART"

"$VENV/bin/python" - "$OUT" <<'PY'
import sys
from pathlib import Path
from PIL import Image
for png in Path(sys.argv[1]).glob("*.png"):
    image = Image.open(png)
    width = 1200 if image.height <= 1000 else 800  # keeps each PNG under ~500 KB
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.convert("RGB").save(png, optimize=True)
    print(f"{png.name}: {image.size}, {png.stat().st_size // 1024} KB")
PY
