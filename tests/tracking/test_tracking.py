"""Tests for Weights & Biases tracking: offline runs read back from their own files.

W&B runs offline here (nothing leaves the machine): each run leaves
``<results>/wandb/offline-run-<time>-<id>/run-<id>.wandb``, the transaction log that
``wandb sync`` uploads. The tests parse that log (a LevelDB-style record log of
``wandb_internal_pb2.Record`` protobufs) and compare it with the suite's own records.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import time
import warnings
import zlib
from pathlib import Path

import pytest

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

from suite.engine.callbacks import Callback  # noqa: E402
from suite.engine.trainer import execute  # noqa: E402
from suite.store.atomic import read_jsonl  # noqa: E402
from suite.store.run_dir import RunDir  # noqa: E402
from suite.tracking import (  # noqa: E402
    WandbTracker,
    flatten,
    trackers,  # noqa: E402
)

BLOCK, HEADER = 32768, 7  # the log's block size and record header (crc32, length, type)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


# ----------------------------------------------------------------- reading a .wandb log


def read_wandb_log(path: Path) -> list:
    """The protobuf records of a ``.wandb`` file, checksums verified."""
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), "not a W&B transaction log"
    records, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if (kind == 0 and length == 0) or pos + HEADER + length > len(data):  # padding, or still being written
            break
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == checksum, f"bad checksum at {pos}"
        pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def read_finished_log(path: Path, timeout: float = 120) -> list:
    """The records of a run's log once its exit record is on disk.

    ``run.finish()`` returns when W&B's service has the run's records; on a loaded machine
    the service may write the last of them to the file a moment later.
    """
    deadline = time.monotonic() + timeout
    while True:
        records = read_wandb_log(path)
        if any(record.WhichOneof("record_type") == "exit" for record in records):
            return records
        assert time.monotonic() < deadline, f"{path} never got its exit record"
        time.sleep(0.1)


def item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def logged_config(records) -> dict:
    """The run's config: the run record's, updated by any later config records."""
    config = {}
    for record in records:
        kind = record.WhichOneof("record_type")
        items = record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
        config.update({item_key(item): json.loads(item.value_json) for item in items})
    return config


def logged_history(records) -> list[dict]:
    """One dict per ``run.log`` call, W&B's own keys (``_step``, ``_runtime``...) left out."""
    return [
        {item_key(i): json.loads(i.value_json) for i in record.history.item if not item_key(i).startswith("_")}
        for record in records
        if record.WhichOneof("record_type") == "history"
    ]


def logged_summary(records) -> dict:
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update({item_key(item): json.loads(item.value_json) for item in record.summary.update})
    return summary


def exit_codes(records) -> list[int]:
    return [record.exit.exit_code for record in records if record.WhichOneof("record_type") == "exit"]


def wandb_logs(results: Path, wandb_id: str) -> list[Path]:
    """The transaction logs of W&B run ``wandb_id``, oldest first (one per process that tracked it)."""
    return sorted(results.glob(f"wandb/offline-run-*-{wandb_id}/run-{wandb_id}.wandb"))


# ----------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def offline(tiny_options, tmp_path, monkeypatch):
    """Options with W&B offline; W&B's own settings and caches kept inside ``tmp_path``."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    return dataclasses.replace(tiny_options, wandb="offline")


class Boom(Callback):
    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        raise RuntimeError("boom")


# ----------------------------------------------------------------- tests


def test_offline_run_logs_config_history_and_summary(tiny_config, offline):
    summary = execute(tiny_config, offline, trackers(offline))
    assert summary["status"] == "finished"
    run = RunDir(offline.results_dir, summary["run_id"])
    wandb_id = summary["wandb_id"]
    assert wandb_id and run.read_summary()["wandb_id"] == wandb_id
    [log] = wandb_logs(offline.results_dir, wandb_id)
    records = read_finished_log(log)

    config = logged_config(records)
    assert (config["method"], config["eps"], config["hparams"]["lmbda"]) == ("fast_bat", 8.0, 10.0)
    assert config["run_id"] == summary["run_id"]

    history, metrics = logged_history(records), read_jsonl(run.metrics)
    assert [row["epoch"] for row in history] == [1, 2]
    assert [row["val_robust_acc"] for row in history] == [row["val_robust_acc"] for row in metrics]
    assert history == metrics  # every metric of every epoch, exactly

    final = logged_summary(records)
    assert final["status"] == "finished"
    assert (final["best/sa"], final["last/ra_pgd"], final["best_epoch"]) == (
        summary["best"]["sa"],
        summary["last"]["ra_pgd"],
        summary["best_epoch"],
    )
    assert exit_codes(records) == [0]


def test_resumed_run_keeps_its_wandb_id(tiny_config, offline):
    """A run that failed after epoch 1 and is rerun logs epoch 2 to the same W&B run."""
    first = trackers(offline)
    with pytest.raises(RuntimeError, match="boom"):
        execute(tiny_config, offline, first + [Boom()])
    run = RunDir(offline.results_dir, tiny_config.resolved().run_id)
    failed = run.read_summary()
    assert failed["status"] == "failed" and failed["wandb_id"]

    summary = execute(tiny_config, offline, trackers(offline))
    assert summary["status"] == "finished" and summary["wandb_id"] == failed["wandb_id"]
    logs = wandb_logs(offline.results_dir, summary["wandb_id"])
    assert len(logs) == 2
    before, after = (read_finished_log(log) for log in logs)
    assert [row["epoch"] for row in logged_history(before)] == [1]
    assert [row["epoch"] for row in logged_history(after)] == [2]
    assert exit_codes(before) == [1] and exit_codes(after) == [0]
    assert logged_history(before) + logged_history(after) == read_jsonl(run.metrics)


def test_wandb_failing_never_fails_the_run(tiny_config, offline, monkeypatch):
    def broken_init(*args, **kwargs):
        raise RuntimeError("no W&B service")

    monkeypatch.setattr(wandb, "init", broken_init)
    with pytest.warns(UserWarning, match="W&B tracking stopped for this run: RuntimeError: no W&B service"):
        summary = execute(tiny_config, offline, trackers(offline))
    assert summary["status"] == "finished" and summary["wandb_id"] is None
    assert not list(offline.results_dir.glob("wandb/offline-run-*"))


def test_wandb_failing_mid_run_stops_tracking_only(tiny_config, offline, monkeypatch):
    tracker = WandbTracker("offline")

    def broken_log(*args, **kwargs):
        raise ConnectionError("lost the service")

    original_init = wandb.init

    def init(*args, **kwargs):
        run = original_init(*args, **kwargs)
        monkeypatch.setattr(run, "log", broken_log)
        return run

    monkeypatch.setattr(wandb, "init", init)
    with pytest.warns(UserWarning, match="ConnectionError: lost the service"):
        summary = execute(tiny_config, offline, [tracker])
    assert summary["status"] == "finished" and tracker.run is None
    assert len(read_jsonl(RunDir(offline.results_dir, summary["run_id"]).metrics)) == 2


def test_online_failure_falls_back_to_offline(tiny_config, offline, monkeypatch):
    original_init = wandb.init

    def init(*args, mode=None, **kwargs):
        if mode == "online":
            raise ConnectionError("api.wandb.ai unreachable")
        return original_init(*args, mode=mode, **kwargs)

    monkeypatch.setattr(wandb, "init", init)
    options = dataclasses.replace(offline, wandb="online")
    with pytest.warns(UserWarning, match="logging offline instead"):
        summary = execute(dataclasses.replace(tiny_config, epochs=1), options, trackers(options))
    [log] = wandb_logs(options.results_dir, summary["wandb_id"])
    assert [row["epoch"] for row in logged_history(read_finished_log(log))] == [1]


def test_disabled_tracking_writes_nothing(tiny_config, tiny_options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = execute(dataclasses.replace(tiny_config, epochs=1), tiny_options, trackers(tiny_options))
    assert not [w for w in caught if "W&B" in str(w.message)]
    assert summary["wandb_id"] is None and not (tiny_options.results_dir / "wandb").exists()


def test_flatten():
    assert flatten({"best": {"sa": 1, "ra": {"pgd": 2}}, "status": "x"}) == {
        "best/sa": 1,
        "best/ra/pgd": 2,
        "status": "x",
    }


def run_record(records):
    [run] = [record.run for record in records if record.WhichOneof("record_type") == "run"]
    return run


def test_runs_carry_names_tags_job_type_and_the_project_of_the_environment(tiny_config, offline, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    config = dataclasses.replace(tiny_config, epochs=1)
    tracking = trackers(
        offline, group="g", name="fast_bat-x-trial7-lmbda12.3", tags=("study:lam", "trial7"), job_type="tune"
    )
    summary = execute(config, offline, tracking)
    [log] = wandb_logs(offline.results_dir, summary["wandb_id"])
    run = run_record(read_finished_log(log))
    assert (run.project, run.run_group, run.display_name, run.job_type) == (
        "from-env",
        "g",
        "fast_bat-x-trial7-lmbda12.3",
        "tune",
    )
    assert list(run.tags) == ["fast_bat", "fashion_mnist", "small_cnn", "eps8", "seed0", "study:lam", "trial7"]
    assert summary["wandb"]["project"] == "from-env" and summary["wandb"]["mode"] == "offline"

    flagged = dataclasses.replace(offline, wandb_project="from-flag", force=True)  # the flag wins
    summary = execute(config, flagged, trackers(flagged))
    [log] = [
        p
        for p in wandb_logs(offline.results_dir, summary["wandb_id"])
        if run_record(read_finished_log(p)).project == "from-flag"
    ]
    assert run_record(read_finished_log(log)).job_type == "train"


def test_trial_names_are_unique_and_readable(tiny_config):
    from suite.experiments.tune import trial_name

    config = tiny_config.resolved()
    assert (
        trial_name(config, 7, {"lmbda": 12.345, "ll_step": 20.6}, {"lmbda": {}})
        == "fast_bat-fashion_mnist-small_cnn-eps8-s0-trial7-lmbda12.3"
    )


def test_best_model_is_logged_as_an_artifact(tiny_config, offline):
    options = dataclasses.replace(offline, wandb_log_model=True)
    summary = execute(dataclasses.replace(tiny_config, epochs=1), options, trackers(options))
    [log] = wandb_logs(options.results_dir, summary["wandb_id"])
    [artifact] = [r.artifact for r in read_finished_log(log) if r.WhichOneof("record_type") == "artifact"]
    assert artifact.type == "model" and artifact.name == f"model-{summary['run_id']}"
    assert [entry.path for entry in artifact.manifest.contents] == ["best.pt"]


def test_sync_replays_a_resumed_offline_run_whole_and_once(tiny_config, offline, tmp_path):
    """Killed after epoch 1 and resumed: two offline folders with one id, each half of the history
    (``wandb sync`` of both would keep one half); ``suite sync`` sends both epochs in order, once."""
    from suite.tracking import sync_run

    with pytest.raises(RuntimeError, match="boom"):
        execute(
            tiny_config,
            offline,
            trackers(offline, group="sw", tags=("sweep:sw",), extra_config={"sweep": "sw"}) + [Boom()],
        )
    summary = execute(
        tiny_config, offline, trackers(offline, group="sw", tags=("sweep:sw",), extra_config={"sweep": "sw"})
    )
    run = RunDir(offline.results_dir, summary["run_id"])
    assert len(wandb_logs(offline.results_dir, summary["wandb_id"])) == 2

    target = tmp_path / "synced"
    assert sync_run(run, mode="offline", folder=target) == "2 epochs, summary (finished)"
    [log] = wandb_logs(target, summary["wandb_id"])
    records = read_finished_log(log)
    assert logged_history(records) == read_jsonl(run.metrics)  # both epochs, in order, exactly
    assert logged_summary(records)["best/sa"] == summary["best"]["sa"]
    assert (logged_config(records)["run_id"], logged_config(records)["sweep"]) == (summary["run_id"], "sw")
    meta = run_record(records)
    assert (meta.run_id, meta.run_group, list(meta.tags)[-1], meta.job_type) == (
        summary["wandb_id"],
        "sw",
        "sweep:sw",
        "train",
    )
    assert exit_codes(records) == [0]

    assert sync_run(run, mode="offline", folder=target) == "up to date"  # nothing is sent twice
    assert len(wandb_logs(target, summary["wandb_id"])) == 1


def test_sync_sends_only_new_epochs_of_a_run_synced_while_training(tiny_config, offline, tmp_path):
    from suite.tracking import sync_run

    with pytest.raises(RuntimeError, match="boom"):
        execute(tiny_config, offline, [Boom()])
    run = RunDir(offline.results_dir, tiny_config.resolved().run_id)
    target = tmp_path / "synced"
    assert sync_run(run, mode="offline", folder=target) == "1 epochs, summary (failed)"
    execute(tiny_config, offline)
    assert sync_run(run, mode="offline", folder=target) == "1 epochs, summary (finished)"
    wandb_id = json.loads((run.path / "wandb_sync.json").read_text())["wandb_id"]
    first, second = (read_finished_log(log) for log in wandb_logs(target, wandb_id))
    assert logged_history(first) + logged_history(second) == read_jsonl(run.metrics)


def test_report_from_wandb_without_a_key_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from suite.cli import main

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert (
        main(
            [
                "report",
                "--from-wandb",
                "me/project",
                "--results-dir",
                str(tmp_path / "r"),
                "--reports-dir",
                str(tmp_path / "reports"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: cannot read W&B project 'me/project'")
    assert "WANDB_API_KEY" in err


def test_sync_without_a_key_stops_at_once_and_marks_nothing(finished_tiny_run, tmp_path, monkeypatch, capsys):
    import shutil

    from suite.cli import main

    _, results, summary = finished_tiny_run
    results = Path(shutil.copytree(results, tmp_path / "results"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert main(["sync", "--results-dir", str(results)]) == 1
    out = capsys.readouterr().out
    assert f"{summary['run_id']}: not synced" in out and "stopped: 0 of 1 runs synced" in out
    assert not (RunDir(results, summary["run_id"]).path / "wandb_sync.json").exists()
    assert main(["sync", "--results-dir", str(results), "--dry-run"]) == 0
    assert f"{summary['run_id']}: would sync" in capsys.readouterr().out


@pytest.fixture(params=["dead_port", "silent_listener"])
def unreachable_server(request, monkeypatch):
    """An API key and a W&B server on 127.0.0.1 that cannot be reached: a port nobody listens on,
    or a listener that accepts connections and never answers (nothing leaves the machine)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if request.param == "dead_port":
        listener.close()
    else:
        listener.listen(64)  # the kernel completes the handshakes; no one ever reads or answers
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    yield request.param
    listener.close()


def test_an_unreachable_server_falls_back_to_a_real_offline_run_after_the_timeout(
    tiny_config, offline, unreachable_server, tmp_path
):
    from suite.tracking import sync_run

    options = dataclasses.replace(offline, wandb="online", wandb_timeout=2.0)
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = execute(dataclasses.replace(tiny_config, epochs=1), options, trackers(options))
    seconds = time.monotonic() - start
    said = [str(w.message) for w in caught if "W&B" in str(w.message)]
    assert len(said) == 1 and "logging offline instead" in said[0] and "suite sync" in said[0], said
    # the 2 s timeout, W&B's service started twice and a one-epoch run, on a loaded machine: well
    # under the 60 s that the online init alone waited before --wandb-timeout
    assert seconds < 50, seconds
    assert summary["status"] == "finished" and summary["wandb_id"] and summary["wandb"]["mode"] == "offline"
    [log] = wandb_logs(options.results_dir, summary["wandb_id"])  # a real offline run, under the same id
    records = read_finished_log(log)
    assert [row["epoch"] for row in logged_history(records)] == [1] and exit_codes(records) == [0]
    run = RunDir(options.results_dir, summary["run_id"])
    assert sync_run(run, mode="offline", folder=tmp_path / "synced") == "1 epochs, summary (finished)"  # later


def test_wandb_timeout_is_a_positive_flag(tmp_path, capsys):
    from suite.cli import main

    assert main(["run", "--wandb-timeout", "0", "--results-dir", str(tmp_path / "r")]) == 2
    assert "--wandb-timeout must be above 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
