"""The spool journal and its sender without a server: replay, acks, torn lines, in-doubt resends, stall bounds."""

from __future__ import annotations

import math
import socket
import sys
import time
from pathlib import Path

import pytest

from labkit.tracking.sender import Backoff, SendError, SpoolBlockedError, is_permanent, send_pending
from labkit.tracking.spool import Journal, SpoolBusyError, find_spools, new_key, peek
from labkit.tracking.spool_settings import SpoolSettings

CREATE = {"op": "create", "uri": "sqlite:////nowhere.db", "experiment": "e", "run_name": "r", "tags": {}}


def metrics_op(steps: range, key: str = "loss") -> dict:
    return {"op": "metrics", "metrics": [[key, float(s) / 10, 1_000 + s, s] for s in steps]}


# ---- the journal -------------------------------------------------------------------------


def test_append_reopen_ack_and_sequence_continue(tmp_path):
    journal = Journal.create(tmp_path, "k1", CREATE)
    assert journal.append({"op": "params", "params": {"lr": "0.1"}}) == 2
    assert journal.append(metrics_op(range(3))) == 3
    journal.ack(1, run_id="abc")
    journal.close()

    again = Journal.open(tmp_path / "k1")
    assert again.acked == 1 and again.run_id == "abc" and again.last_seq == 3
    assert [r["seq"] for r in again.records()] == [1, 2, 3]
    assert again.next_pending()["op"] == "params" and again.pending_count() == 2
    assert again.append({"op": "end", "status": "FINISHED"}) == 4
    with pytest.raises(ValueError, match="expected to ack the first pending operation 2, got 3"):
        again.ack(3)
    again.ack(2)
    again.close()
    records, state = peek(tmp_path / "k1")
    assert state["acked"] == 2 and [r["op"] for r in records] == ["create", "params", "metrics", "end"]
    assert records[2]["metrics"][1] == ["loss", 0.1, 1001, 1]


def test_torn_last_line_is_dropped_and_appending_goes_on(tmp_path):
    journal = Journal.create(tmp_path, "k", CREATE)
    journal.append(metrics_op(range(2)))
    journal.close()
    path = tmp_path / "k" / "journal.jsonl"
    intact = path.read_bytes()
    with open(path, "ab") as handle:  # the machine died in the middle of a write
        handle.write(b'{"seq":3,"op":"metrics","metrics":[["loss",0.5,10')

    again = Journal.open(tmp_path / "k")
    assert again.last_seq == 2 and path.read_bytes() == intact
    assert again.append(metrics_op(range(2, 4))) == 3
    again.close()
    assert [r["seq"] for r in peek(tmp_path / "k")[0]] == [1, 2, 3]


def test_damaged_record_before_the_end_names_file_and_line(tmp_path):
    journal = Journal.create(tmp_path, "k", CREATE)
    journal.append(metrics_op(range(2)))
    journal.append({"op": "end", "status": "FINISHED"})
    journal.close()
    path = tmp_path / "k" / "journal.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "garbage", lines[2]]) + "\n")
    with pytest.raises(ValueError, match=r"journal.jsonl:2: expected a JSON operation record"):
        Journal.open(tmp_path / "k")
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    with pytest.raises(ValueError, match="expected sequence number 2, got 3"):
        Journal.open(tmp_path / "k")


def test_a_second_opener_is_refused_until_close(tmp_path):
    journal = Journal.create(tmp_path, "k", CREATE)
    with pytest.raises(SpoolBusyError, match="in use by another process"):
        Journal.open(tmp_path / "k")
    journal.close()
    Journal.open(tmp_path / "k").close()
    with pytest.raises(FileExistsError, match="found a journal"):
        Journal.create(tmp_path, "k", CREATE)
    with pytest.raises(ValueError, match="spool key"):
        Journal.create(tmp_path, "../up", CREATE)


def test_artifacts_are_snapshots_removed_once_acked(tmp_path):
    journal = Journal.create(tmp_path / "spool", "k", CREATE)
    source = tmp_path / "last.ckpt"
    source.write_bytes(b"v1")
    folder = tmp_path / "tree"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.txt").write_text("x")
    seq = journal.add_artifact(source, "checkpoints")
    source.write_bytes(b"v2")  # the run overwrites it later: the spool keeps what was logged
    dir_seq = journal.add_artifact(folder, None)
    text_seq = journal.add_text("hello", "notes/a.txt")
    records = {r["seq"]: r for r in journal.records()}
    assert journal.file_path(records[seq]).read_bytes() == b"v1"
    assert records[seq]["artifact_path"] == "checkpoints" and not records[seq]["is_dir"]
    assert (journal.file_path(records[dir_seq]) / "sub" / "x.txt").read_text() == "x"
    assert records[text_seq]["artifact_path"] == "notes"
    assert journal.file_path(records[text_seq]).read_text() == "hello"
    with pytest.raises(FileNotFoundError, match="expected an existing file"):
        journal.add_artifact(tmp_path / "missing", None)
    for number in (1, seq):
        journal.ack(number)
    assert not (journal.folder / "files" / str(seq)).exists()
    assert (journal.folder / "files" / str(dir_seq)).exists()
    journal.close()
    assert find_spools(tmp_path / "spool") == [journal.folder]


def test_settings_parse_and_name_bad_keys():
    assert SpoolSettings.parse(None) is None and SpoolSettings.parse({"enabled": False}) is None
    assert SpoolSettings.parse(True) == SpoolSettings(enabled=True)
    assert SpoolSettings.parse({"offline": True}).offline  # offline implies spooling
    with pytest.raises(ValueError, match=r"tracking.spool: unknown key\(s\) \['max_wait'\]"):
        SpoolSettings.parse({"enabled": True, "max_wait": 3})
    with pytest.raises(ValueError, match=r"tracking\.spool\.request_timeout_s: expected a whole number"):
        SpoolSettings.parse({"enabled": True, "request_timeout_s": 0.5})
    with pytest.raises(ValueError, match=r"tracking.spool.backoff_max_s: expected >= backoff_min_s \(5"):
        SpoolSettings.parse({"enabled": True, "backoff_min_s": 5, "backoff_max_s": 1})
    with pytest.raises(TypeError, match="expected a mapping of settings"):
        SpoolSettings.parse("yes")


def test_backoff_doubles_up_to_its_cap():
    backoff = Backoff(1.0, 10.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


# ---- sending, against a store that keeps duplicates (like MLflow's file store) -------------------


class Entity:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class FakeClient:
    """An MLflow client keeping every logged row, duplicates included; ``lose_answer`` drops one reply."""

    tracking_uri = "fake://"

    def __init__(self) -> None:
        self.metrics: list[tuple[str, float, int, int]] = []
        self.params: dict[str, str] = {}
        self.calls: list[str] = []
        self.lose_answer: str | None = None  # the call that reaches the store but whose answer is lost
        self.fail_before: str | None = None  # the call that never reaches the store
        self.refuse: str | None = None

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_before == name:
            self.fail_before = None
            raise ConnectionError("connection refused")

    def _answer(self, name: str) -> None:
        if self.lose_answer == name:
            self.lose_answer = None
            raise TimeoutError("read timed out")

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self._call("log_batch")
        if params and self.refuse == "params":
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise MlflowException("param changed", error_code=INVALID_PARAMETER_VALUE)
        self.metrics += [(m.key, m.value, m.timestamp, m.step) for m in metrics]
        self.params.update({p.key: p.value for p in params})
        self._answer("log_batch")

    def get_metric_history(self, run_id, key):
        self.calls.append("get_metric_history")
        clip = sys.float_info.max  # like MLflow's stores: infinities come back as +-max float
        rows = [(v if not math.isinf(v) else math.copysign(clip, v), t, s) for k, v, t, s in self.metrics if k == key]
        return [Entity(key=key, value=v, timestamp=t, step=s) for v, t, s in rows]

    def set_terminated(self, run_id, status, end_time=None):
        self._call("set_terminated")


def resumed_journal(tmp_path: Path) -> Journal:
    return Journal.create(tmp_path, new_key(), {"op": "resume", "run_id": "r1"}, run_id="r1")


def test_lost_answer_makes_the_batch_in_doubt_and_it_is_not_sent_twice(tmp_path):
    journal = resumed_journal(tmp_path)
    journal.ack(1)
    batch = metrics_op(range(4))
    batch["metrics"] += [["acc", math.nan, 7, 0], ["acc", math.inf, 7, 1]]  # stored as NaN and +max float
    journal.append(batch)
    journal.append(metrics_op(range(4, 6)))
    client = FakeClient()
    client.lose_answer = "log_batch"
    with pytest.raises(SendError, match="operation 2: TimeoutError"):
        send_pending(journal, client)
    assert journal.acked == 1 and len(client.metrics) == 6  # stored, not acked
    del client.metrics[3]  # say the store kept all but one row of the batch
    report = send_pending(journal, client, in_doubt=True)
    assert journal.acked == 3 and report.metric_values == 8 and report.ops["metrics"] == 2
    loss = sorted((s, v) for k, v, _, s in client.metrics if k == "loss")
    assert loss == [(s, s / 10) for s in range(6)]
    acc = sorted(s for k, _, _, s in client.metrics if k == "acc")
    assert acc == [0, 1]
    assert client.calls.count("get_metric_history") == 2  # only the in-doubt batch was checked (2 keys)


def test_without_the_check_a_resend_would_duplicate(tmp_path):
    """The fake store really keeps duplicates: resending blindly would log each step twice."""
    journal = resumed_journal(tmp_path)
    journal.ack(1)
    journal.append(metrics_op(range(3)))
    client = FakeClient()
    client.lose_answer = "log_batch"
    with pytest.raises(SendError):
        send_pending(journal, client)
    send_pending(journal, client, in_doubt=False)
    assert sorted(s for _, _, _, s in client.metrics) == [0, 0, 1, 1, 2, 2]


def test_failure_before_the_store_resends_everything_once(tmp_path):
    journal = resumed_journal(tmp_path)
    journal.ack(1)
    journal.append(metrics_op(range(3)))
    journal.append({"op": "end", "status": "FINISHED", "end_time": 5})
    client = FakeClient()
    client.fail_before = "set_terminated"
    with pytest.raises(SendError, match="operation 3: ConnectionError"):
        send_pending(journal, client)
    assert journal.acked == 2
    report = send_pending(journal, client, in_doubt=True)
    assert report.status == "FINISHED" and journal.pending_count() == 0
    assert sorted(s for _, _, _, s in client.metrics) == [0, 1, 2]


def test_refused_operations_are_kept_and_skipped(tmp_path):
    journal = resumed_journal(tmp_path)
    journal.ack(1)
    journal.append({"op": "params", "params": {"lr": "0.2"}})
    journal.append(metrics_op(range(2)))
    client = FakeClient()
    client.refuse = "params"
    report = send_pending(journal, client)
    assert report.rejected == 1 and report.ops["metrics"] == 1 and journal.pending_count() == 0
    (entry,) = journal.rejected()
    assert entry["record"]["params"] == {"lr": "0.2"} and "param changed" in entry["error"]
    assert journal.state["rejected"] == 1


def test_operations_before_the_run_exists_block(tmp_path):
    journal = Journal.create(tmp_path, "k", {"op": "resume", "run_id": None})
    with pytest.raises(SpoolBlockedError, match="before the run exists"):
        send_pending(journal, FakeClient())


def test_permanent_and_transient_errors():
    from mlflow.exceptions import MlflowException, RestException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    assert is_permanent(MlflowException("bad", error_code=INVALID_PARAMETER_VALUE))
    assert is_permanent(RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "gone"}))
    assert not is_permanent(RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}))
    assert not is_permanent(MlflowException("API request failed: Connection refused"))  # INTERNAL_ERROR
    assert not is_permanent(ConnectionError("refused")) and not is_permanent(TimeoutError())
    assert is_permanent(FileNotFoundError("spooled file gone"))


def blackhole() -> socket.socket:
    """A port that accepts connections and never answers (the worst case for a client: timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def test_unreachable_server_never_stalls_a_flush(tmp_path):
    from labkit.tracking.mlflow_tracker import MLflowTracker

    with blackhole() as sock:
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
        spool = {"enabled": True, "dir": str(tmp_path), "request_timeout_s": 1, "max_wait_s": 1.0}
        start = time.perf_counter()
        tracker = MLflowTracker(uri=uri, experiment="stall", spool=spool, flush_every_n=10**6)
        opened = time.perf_counter() - start
        assert tracker.run_id.startswith("local-") and tracker.mlflow_run_id is None
        worst = 0.0
        for step in range(40):
            tracker.log_metrics({"train/loss": 1.0 / (step + 1)}, step)
            begin = time.perf_counter()
            tracker.flush()
            worst = max(worst, time.perf_counter() - begin)
        tracker.log_params({"lr": 0.1})
        begin = time.perf_counter()
        tracker.finish()
        finishing = time.perf_counter() - begin
    # bounds: the start probes /health once (1 s timeout); a flush only appends to the journal;
    # finish waits max_wait_s (1 s) plus one request in flight (1 s)
    assert opened < 1.0 + 2.0, opened
    assert worst < 0.5, worst
    assert finishing < 1.0 + 1.0 + 2.0, finishing
    records, state = peek(tracker.spool_dir)
    assert state["acked"] == 0 and [r["op"] for r in records][-2:] == ["params", "end"]
    assert sum(len(r["metrics"]) for r in records if r["op"] == "metrics") == 40


def test_out_of_range_spool_settings_fail_when_the_config_is_validated():
    from labkit.runner.hydra_app import compose
    from labkit.runner.schema import validate_config

    with pytest.raises(ValueError, match=r"tracking\.spool\.max_wait_s: expected a number >= 0, got -1"):
        validate_config(compose(["tracking.spool.max_wait_s=-1"]))
