"""``labkit sync``: send what spooled runs left behind (offline runs, runs that ended during an outage).

    labkit sync                                      # ./mlflow-spool, each run to the store it names
    labkit sync --tracking-uri http://127.0.0.1:5000 # send offline runs to this server instead
    labkit sync --spool /data/mlflow-spool --list    # what is waiting; send nothing
    labkit sync --prune                              # then delete the spools of fully sent runs

Each spool is sent in order from its first unsent operation; the first one is checked against
the store before it is resent (it may have arrived before a crash), so running ``labkit sync``
twice, or after a run that was cut off half-way through sending, sends nothing twice. A spool
that a running job (or another ``labkit sync``) holds is skipped. Exit status: 0 when every
spool is sent (or in use elsewhere), 1 when something could not be sent, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit sync", description="Send spooled MLflow runs (offline runs, tracking outages) to their store."
    )
    parser.add_argument("--spool", help="the spool folder (default: mlflow-spool/ in the current directory)")
    parser.add_argument(
        "--tracking-uri",
        help="send to this store instead of the one each run names (only runs not yet created in a store)",
    )
    parser.add_argument("--timeout", type=int, default=10, help="seconds one request may take (default 10)")
    parser.add_argument("--list", action="store_true", help="show what is waiting, send nothing")
    parser.add_argument("--prune", action="store_true", help="delete the spools of runs fully sent and ended")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error(f"--timeout: expected a whole number of seconds >= 1, got {args.timeout}")
    from labkit.tracking.spool import find_spools
    from labkit.tracking.spool_settings import default_spool_dir
    from labkit.tracking.store import http_limits, resolve_tracking_uri

    override = resolve_tracking_uri(args.tracking_uri) if args.tracking_uri else None
    root = Path(args.spool).expanduser().resolve() if args.spool else default_spool_dir(None)
    if not root.is_dir():
        print(f"labkit sync: no spool folder at {root}; expected one (pass --spool DIR)", file=sys.stderr)
        return 2
    spools = find_spools(root)
    if not spools:
        print(f"labkit sync: nothing spooled in {root}")
        return 0
    failed = 0
    with http_limits(args.timeout):
        for folder in spools:
            ok, line = _list_one(folder) if args.list else _sync_one(folder, override, args.prune)
            print(line)
            failed += not ok
    return 1 if failed else 0


def _describe(journal: Any) -> str:
    first = journal.first or {}
    name = first.get("run_name") or first.get("run_id") or "?"
    where = f", experiment {first['experiment']}" if first.get("experiment") else ""
    return f"{journal.key} (run {name}{where})"


def _list_one(folder: Path) -> tuple[bool, str]:
    from labkit.tracking.spool import peek

    try:
        records, state = peek(folder)
    except (OSError, ValueError) as exc:
        return False, f"{folder.name}: cannot read the spool: {exc}"
    first = records[0] if records else {}
    name = first.get("run_name") or first.get("run_id") or "?"
    waiting = sum(1 for r in records if r["seq"] > int(state.get("acked", 0)))
    store = f"store run {state['run_id']}" if state.get("run_id") else "not created in a store yet"
    ended = "ended" if any(r["op"] == "end" for r in records) else "not ended (running, or cut off)"
    return True, f"{folder.name} (run {name}): {waiting} of {len(records)} operations waiting; {store}; {ended}"


def _sync_one(folder: Path, override: str | None, prune: bool) -> tuple[bool, str]:
    """Send one spool; ``(ok, the line to print)``."""
    from labkit.tracking.sender import SendError, SpoolBlockedError, send_pending
    from labkit.tracking.spool import Journal, SpoolBusyError
    from labkit.tracking.store import make_client

    try:
        journal = Journal.open(folder)
    except SpoolBusyError:
        return True, f"{folder.name}: skipped, in use by another process (a running job?)"
    except (OSError, ValueError) as exc:
        return False, f"{folder.name}: cannot read the spool: {exc}"
    try:
        head = _describe(journal)
        sent_to = journal.state.get("store_uri")
        uri = override or sent_to or (journal.first or {}).get("uri")
        if not uri:
            return False, f"{head}: the spool names no store; expected --tracking-uri URI"
        if override and sent_to and journal.run_id and override != sent_to:
            return False, (
                f"{head}: its run {journal.run_id} is in {sent_to}; expected --tracking-uri {sent_to} "
                f"(or none), got {override}"
            )
        ended = ""
        last = journal.last_op()
        if last is not None and last["op"] != "end":
            # we hold the lock, so the process that wrote this spool is gone without ending the run
            journal.append({"op": "end", "status": "KILLED", "end_time": int(time.time() * 1000)})
            journal.sync()
            ended = " (its process ended without ending the run: ended KILLED)"
        if journal.pending_count() == 0:
            line = f"{head}: up to date (store run {journal.run_id} in {uri})"
        else:
            try:
                client = make_client(uri)
                report = send_pending(journal, client, in_doubt=True)
            except ConnectionError as exc:
                return False, f"{head}: not sent: {exc}"
            except SendError as exc:
                left = journal.pending_count()
                return False, f"{head}: stopped at {exc} ({left} operations still waiting; run labkit sync again)"
            except SpoolBlockedError as exc:
                return False, f"{head}: blocked: {exc}"
            line = f"{head} -> {uri} run {journal.run_id}: sent {report.describe()}{ended}"
        if prune and journal.pending_count() == 0 and any(r["op"] == "end" for r in journal.records()):
            journal.close()
            shutil.rmtree(folder)
            line += "; spool deleted"
        return True, line
    finally:
        journal.close()


if __name__ == "__main__":
    raise SystemExit(main())
