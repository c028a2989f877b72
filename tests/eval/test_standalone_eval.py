"""``suite eval``: the trainer's own numbers from a finished run, external checkpoints, transfer, bad input."""

from __future__ import annotations

import json
import shutil
import sys

import torch

from suite.cli import main


def _copy(finished_tiny_run, tmp_path):
    config, results, summary = finished_tiny_run
    dest = tmp_path / "results"
    shutil.copytree(results, dest)
    return config, dest, summary


def _args(results, *extra):
    return ["eval", "--results-dir", str(results), "--data-dir", str(results.parent / "data"), "--device", "cpu"]


def _eval(results, *extra):
    return main([*_args(results), "--no-download", *extra])


def _records(results):
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("eval-*/summary.json"))]


def test_eval_of_a_run_reproduces_its_final_numbers_and_is_listed(finished_tiny_run, tmp_path, capsys):
    config, results, summary = _copy(finished_tiny_run, tmp_path)
    run_id = summary["run_id"]
    for which in ("best", "last"):
        assert _eval(results, "--run", run_id, "--which", which) == 0
    records = {r["evaluated"]["which"]: r for r in _records(results)}
    for which in ("best", "last"):
        for metric in ("sa", "ra_pgd"):
            assert records[which]["best"][metric] == summary[which][metric], (which, metric)
    assert _eval(results, "--run", run_id) == 0  # the same eval again: skipped
    assert "already finished; skipped" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["runs", "--results-dir", str(results), "--csv"]) == 0
    out = capsys.readouterr().out
    assert f"{config.method}@eval" in out and "eval-" in out

    import pandas as pd

    from suite.commands.report import write_report

    write_report(results_dir=results, reports_dir=tmp_path / "reports", name="r")
    listed = pd.read_csv(tmp_path / "reports" / "r" / "runs.csv")
    assert {f"{config.method}@eval", f"{config.method}@eval-last", config.method} <= set(listed["method"])
    cost = pd.read_csv(tmp_path / "reports" / "r" / "cost.csv")
    assert set(cost["method"]) == {config.method}  # an eval trains nothing: no training cost


def test_external_checkpoint_builtin_arch_and_factory(finished_tiny_run, tmp_path, monkeypatch):
    _, results, summary = _copy(finished_tiny_run, tmp_path)
    state = torch.load(results / "runs" / summary["run_id"] / "last.pt", weights_only=True)["model"]
    wrapped = tmp_path / "dp.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "mynets.py").write_text(
        "from suite.models import build_model\n"
        "def build(num_classes):\n"
        "    return build_model('small_cnn', 1, num_classes, [0.2860], [0.3530])\n"
    )
    monkeypatch.syspath_prepend(str(pkg))
    common = ["--dataset", "fashion_mnist", "--test-points", "128", "--pgd-steps", "5", "--pgd-restarts", "1"]
    common.append("--no-autoattack")  # AutoAttack takes minutes even on 128 points
    assert _eval(results, "--checkpoint", str(wrapped), "--arch", "small_cnn", "--name", "theirs", *common) == 0
    assert _eval(results, "--checkpoint", str(wrapped), "--arch", "mynets:build", "--name", "fact", *common) == 0
    by_name = {r["name"]: r for r in _records(results)}
    assert by_name["theirs"]["best"]["sa"] == summary["last"]["sa"]
    assert by_name["theirs"]["best"]["ra_pgd"] == summary["last"]["ra_pgd"]
    assert by_name["fact"]["evaluated"]["arch"] == "mynets:build"
    assert by_name["theirs"]["best"]["ra_aa"] is None and by_name["theirs"]["protocol"]["aa_points"] == 0
    assert 0 <= by_name["fact"]["best"]["ra_pgd"] <= by_name["fact"]["best"]["sa"]


def test_transfer_from_itself_is_white_box_and_from_another_is_weaker(finished_tiny_run, tmp_path):
    from suite.eval.pgd import pgd_robust
    from suite.eval.transfer import transfer_robust
    from suite.models import build_model

    torch.manual_seed(0)
    x = torch.rand(40, 1, 28, 28)
    y = torch.randint(0, 10, (40,))
    victim = build_model("small_cnn", 1, 10, [0.5], [0.5]).eval()
    other = build_model("small_cnn", 1, 10, [0.5], [0.5]).eval()
    torch.manual_seed(1)
    white = pgd_robust(victim, x, y, 0.1, 4, 2, batch_size=16, early_exit=False)
    torch.manual_seed(1)
    same = transfer_robust(victim, victim, x, y, 0.1, 4, 2, batch_size=16)
    assert torch.equal(white, same)
    torch.manual_seed(1)
    transfer = transfer_robust(other, victim, x, y, 0.1, 4, 2, batch_size=16)
    assert int(transfer.sum()) >= int(white.sum())

    _, results, summary = _copy(finished_tiny_run, tmp_path)
    assert _eval(results, "--run", summary["run_id"], "--surrogate", summary["run_id"]) == 0
    (record,) = _records(results)
    assert record["best"]["transfer_from"]["run"] == summary["run_id"]
    assert record["best"]["ra_pgd"] <= record["best"]["ra_transfer"] <= record["best"]["sa"]


def _refused(capsys, results, *args, says):
    assert _eval(results, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err
    assert not list((results / "runs").glob("eval-*"))


class Evil:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(MARKER[0]),))


MARKER = [""]


def test_bad_input_is_one_line_and_writes_nothing(finished_tiny_run, tmp_path, capsys):
    _, results, summary = _copy(finished_tiny_run, tmp_path)
    ds = ["--dataset", "fashion_mnist"]
    _refused(
        capsys, results, "--checkpoint", str(tmp_path / "nope.pt"), "--arch", "small_cnn", *ds, says="no checkpoint"
    )
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    _refused(capsys, results, "--checkpoint", str(text), "--arch", "small_cnn", *ds, says="refusing to load")
    notweights = tmp_path / "list.pt"
    torch.save([1, 2], notweights)
    _refused(capsys, results, "--checkpoint", str(notweights), "--arch", "small_cnn", *ds, says="not a checkpoint")
    last = results / "runs" / summary["run_id"] / "last.pt"
    _refused(capsys, results, "--checkpoint", str(last), "--arch", "small_cnnn", *ds, says="did you mean")
    _refused(capsys, results, "--checkpoint", str(last), "--arch", "preact_resnet18", *ds, says="has no weights for")
    state = torch.load(last, weights_only=True)["model"]
    key = next(k for k in state if state[k].ndim == 1 and k.endswith("bias") and len(state[k]) == 10)
    shaped = tmp_path / "shaped.pt"
    torch.save({k: (torch.zeros(3, 3) if k == key else v) for k, v in state.items()}, shaped)
    _refused(capsys, results, "--checkpoint", str(shaped), "--arch", "small_cnn", *ds, says=f"'{key}' has shape (3, 3)")
    _refused(capsys, results, "--run", summary["run_id"][:-1] + "x", says="unknown run")
    MARKER[0] = str(tmp_path / "pwned")
    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, evil)
    _refused(capsys, results, "--checkpoint", str(evil), "--arch", "small_cnn", *ds, says="weights_only")
    assert not (tmp_path / "pwned").exists()


def test_class_count_mismatch(tmp_path, capsys, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "sevennets.py").write_text(
        "import torch\ndef build():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 7))\n"
    )
    monkeypatch.syspath_prepend(str(pkg))
    sys.modules.pop("sevennets", None)
    import importlib

    torch.save(importlib.import_module("sevennets").build().state_dict(), tmp_path / "seven.pt")
    results = tmp_path / "results"
    args = ["--checkpoint", str(tmp_path / "seven.pt"), "--arch", "sevennets:build", "--dataset", "fashion_mnist"]
    assert _eval(results, *args, "--test-points", "8", "--pgd-steps", "1", "--pgd-restarts", "1") == 2
    assert "outputs (7,) per point but fashion_mnist has 10 classes" in capsys.readouterr().err
    assert not results.exists() or not list((results / "runs").glob("eval-*"))


def test_autoattack_in_suite_eval_is_no_weaker_than_pgd_on_its_points(finished_tiny_run, tmp_path):
    """AutoAttack on the first 16 test points, beside RA-PGD on the same points: AutoAttack (APGD-CE,
    APGD-T, FAB-T, Square) is the stronger attack, so it never leaves more points robust."""
    config, results, summary = _copy(finished_tiny_run, tmp_path)
    assert _eval(results, "--run", summary["run_id"], "--aa-points", "16") == 0
    (record,) = _records(results)
    best = record["best"]
    assert record["protocol"]["aa_points"] == 16
    assert best["ra_aa"] is not None and 0 <= best["ra_aa"] <= best["ra_pgd_aa_subset"]
    assert best["ra_pgd_aa_subset"] <= 100 and best["sa"] == summary["best"]["sa"]
