"""Code identity: records hold their method's code hash and the suite's git state; a run whose method
changed since is trained again (or kept with --accept-stale), never silently reused."""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from suite.engine import reuse
from suite.engine.trainer import execute
from suite.experiments.launch import run_sweep
from suite.experiments.sweep import SweepSpec
from suite.methods.identity import method_code, module_code
from suite.store import RunDir, read_json
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[2]

METHOD = '''
"""An FGSM step from a random start (the test's plug-in)."""
import torch.nn.functional as F

from suite.methods.perturbation import input_grad, project, uniform_init

HELP = {"gamma": "step size in units of eps"}


def defaults(eps):
    return {"gamma": 1.25}


def step(model, x, y, eps, *, gamma):
    # the attack
    z = uniform_init(x, eps)
    grad, _ = input_grad(model, x + z, y)
    delta = project(z + gamma * eps * grad.sign(), x, eps)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
'''


PLUGIN = "idplug.fgsm_like"  # a dotted path: the package idplug, its module fgsm_like


def plugin(folder: Path, source: str = METHOD):
    """Write the plug-in package under ``folder`` and import its method module afresh."""
    (folder / "idplug").mkdir(exist_ok=True)
    (folder / "idplug" / "__init__.py").write_text("")
    (folder / "idplug" / "fgsm_like.py").write_text(textwrap.dedent(source))
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    sys.modules.pop(PLUGIN, None)
    importlib.invalidate_caches()
    return importlib.import_module(PLUGIN)


def test_the_hash_follows_the_code_not_its_comments_docstrings_or_help(tmp_path):
    base = module_code(plugin(tmp_path))
    cosmetic = METHOD.replace("# the attack", "# the attack, commented").replace(
        '"step size in units of eps"', '"the step, in units of eps"'
    )
    cosmetic = cosmetic.replace('(the test\'s plug-in)."""', '(the test\'s plug-in), documented."""')
    assert module_code(plugin(tmp_path, cosmetic)) == base
    assert module_code(plugin(tmp_path, METHOD.replace("gamma * eps", "gamma * eps * 0.5"))) != base
    assert module_code(plugin(tmp_path, METHOD.replace('"gamma": 1.25', '"gamma": 1.5'))) != base


def test_the_hash_covers_the_suite_helpers_the_method_uses(monkeypatch):
    from suite.methods import fast_at, identity

    modules = [m.__name__ for m in identity.code_modules(fast_at)]
    assert modules == ["suite.methods.fast_at", "suite.methods.perturbation"]
    before = module_code(fast_at)
    real = identity.inspect.getsource
    monkeypatch.setattr(
        identity.inspect,
        "getsource",
        lambda m: real(m) + "\nEXTRA = 1\n" if m.__name__ == "suite.methods.perturbation" else real(m),
    )
    assert module_code(fast_at) != before


def test_records_hold_method_code_module_and_git_state(finished_tiny_run):
    config, results, summary = finished_tiny_run
    run = RunDir(results, summary["run_id"])
    for record in (summary, read_json(run.config)):
        assert record["method_code"] == method_code(config.method)
        assert record["method_module"] == "suite.methods.fast_bat"
        assert set(record["git"]) == {"commit", "dirty"}
    if summary["git"]["commit"]:  # a git checkout: the commit is the tree's, dirty a bool
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        assert summary["git"]["commit"] == head and isinstance(summary["git"]["dirty"], bool)
        assert read_json(run.config)["code_version"].endswith(".dirty") == summary["git"]["dirty"]


def copied(finished_tiny_run, tmp_path):
    config, results, summary = finished_tiny_run
    shutil.copytree(results, tmp_path / "results")
    return config, RunDir(tmp_path / "results", summary["run_id"]), summary


def make_stale(run: RunDir) -> None:
    summary = read_json(run.summary)
    summary["method_code"] = "0" * 16  # as if made by another version of the method
    run.summary.write_text(json.dumps(summary))


def test_a_stale_run_is_trained_again_from_scratch(finished_tiny_run, tmp_path, tiny_options, capsys):
    config, run, original = copied(finished_tiny_run, tmp_path)
    make_stale(run)
    assert reuse.code_state(run, config.method) == "stale"
    again = execute(config, tiny_options)
    assert "code changed since this run was made" in capsys.readouterr().err
    assert again["method_code"] == method_code(config.method)
    assert again["started"] != original["started"] or again["finished"] >= original["finished"]
    assert [json.loads(line)["epoch"] for line in run.metrics.read_text().splitlines()] == [1, 2]  # no resume
    assert again["last"] == original["last"]  # the same code again: the same numbers


def test_accept_stale_keeps_the_result(finished_tiny_run, tmp_path, tiny_options, capsys):
    config, run, _ = copied(finished_tiny_run, tmp_path)
    make_stale(run)
    kept = execute(config, dataclasses.replace(tiny_options, accept_stale=True))
    assert kept["method_code"] == "0" * 16
    assert "already finished" in capsys.readouterr().out


def test_a_record_without_a_hash_is_unknown_and_kept(finished_tiny_run, tmp_path, tiny_options):
    config, run, _ = copied(finished_tiny_run, tmp_path)
    summary = read_json(run.summary)
    del summary["method_code"]
    run.summary.write_text(json.dumps(summary))
    assert reuse.code_state(run, config.method) == "unknown"
    assert reuse.reusable(run, config.method, tiny_options)


def test_the_sweep_dry_run_marks_stale_runs_and_the_sweep_retrains_them(finished_tiny_run, tmp_path, tiny_options):
    config, run, _ = copied(finished_tiny_run, tmp_path)
    spec = SweepSpec("identity", tmp_path / "identity.yaml", base=dict(TINY))
    out = __import__("io").StringIO()
    run_sweep(spec, tiny_options, dry_run=True, out=out)
    assert "1 finished, 0 to run" in out.getvalue() and out.getvalue().rstrip().endswith("done")
    make_stale(run)
    out = __import__("io").StringIO()
    run_sweep(spec, tiny_options, dry_run=True, out=out)
    assert "0 finished, 1 to run" in out.getvalue()
    assert "stale: method code changed since; trains again (--accept-stale keeps it)" in out.getvalue()
    out = __import__("io").StringIO()
    run_sweep(spec, dataclasses.replace(tiny_options, accept_stale=True), dry_run=True, out=out)
    assert "1 finished, 0 to run" in out.getvalue()


def test_editing_a_plugin_method_makes_its_sweep_train_again(tmp_path):
    """The issue's case end to end, in fresh processes: edit step(), relaunch, the run is trained again."""
    plugin(tmp_path)
    spec = tmp_path / "plug.yaml"
    spec.write_text(
        textwrap.dedent(
            """
            name: plug
            base: {dataset: fashion_mnist, arch: small_cnn, epochs: 1, train_points: 128, val_points: 32,
                   test_points: 32, aa_points: 0, co_points: 0, pgd_steps: 2, pgd_restarts: 1,
                   val_pgd_steps: 1, batch_size: 64}
            grid: {method: [idplug.fgsm_like]}
            """
        )
    )
    env = {**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{REPO}"}
    sweep = [
        sys.executable,
        "-m",
        "suite.cli",
        "sweep",
        str(spec),
        "--results-dir",
        str(tmp_path / "r"),
        "--device",
        "cpu",
    ]
    sweep += ["--no-download", "--quiet"]

    def launch(*extra):
        done = subprocess.run(sweep + list(extra), env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    assert "1 done" in launch()
    assert "1 finished, 0 to run" in launch("--dry-run")
    (tmp_path / "idplug" / "fgsm_like.py").write_text(METHOD.replace("gamma * eps", "gamma * eps * 0.5"))
    assert "stale: method code changed" in launch("--dry-run")
    assert "1 done" in launch()


def test_the_runs_table_carries_the_hash_that_reports_compare(finished_tiny_run):
    from suite.store import runs_dataframe

    config, results, summary = finished_tiny_run
    frame = runs_dataframe(results)
    assert list(frame["method_code"]) == [summary["method_code"]]
