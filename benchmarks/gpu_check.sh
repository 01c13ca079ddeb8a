#!/usr/bin/env bash
# GPU verification, run on a machine with an NVIDIA GPU (see benchmarks/RESULTS.md):
#   bash benchmarks/gpu_check.sh OUT_DIR
# Uses the cupy installed there, or installs wheels carried in .whl/ (cupy-cuda12x or
# cupy-cuda13x, pillow ...) into /tmp/site. Runs the gpu-marked tests and the benchmarks
# on cupy, and writes logs to OUT_DIR (default: $OUT, else ./gpu_check_out).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! python3 -c "import cupy" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__); print(cupy.cuda.runtime.getDeviceProperties(0)['name'])"
  python3 -c "import labkit; print('labkit sees a GPU:', labkit.cuda_is_available())"
} 2>&1 | tee "$out/env.txt"

# every test that runs on the device fixture (the core, ops, layers, optimizers: they need
# neither hydra nor mlflow, which the GPU machine lacks) and the NCCL communicator
repeats="${GPU_CHECK_REPEATS:-20}"
timeout "${GPU_CHECK_TEST_S:-300}" python3 -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors \
  tests/core tests/ops tests/nn tests/optim tests/distributed/test_nccl.py 2>&1 | tee "$out/gpu_tests.txt"
tests_rc=${PIPESTATUS[0]}

for bench in benchmarks/ops_overhead.py benchmarks/training_steps.py; do
  name=$(basename "$bench" .py)
  timeout "${GPU_CHECK_BENCH_S:-200}" python3 "$bench" --device cuda --repeats "$repeats" 2>&1 | tee "$out/${name}_cuda.txt"
done
echo "gpu tests exit code: $tests_rc" | tee -a "$out/env.txt"
exit "$tests_rc"
