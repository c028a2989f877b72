"""Plug-in methods in a sweep's worker processes: submitit's local jobs and the spawned per-cell
processes (and Slurm's array tasks: tests/experiments/test_slurm.py) resolve a dotted-path and an entry-point method that the launcher found only through
its own sys.path (not PYTHONPATH), because every job is handed the plug-ins' import paths."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("SUITE_WANDB", "disabled")

from suite.experiments.launch import run_sweep, train_cells  # noqa: E402
from suite.experiments.sweep import load_spec  # noqa: E402
from suite.methods.plugins import import_paths  # noqa: E402
from suite.store.run_dir import RunDir  # noqa: E402
from tests.experiments.test_sweep import options, tiny_spec  # noqa: E402
from tests.plugins import forget_plugin_modules, write_entry_points, write_plugin  # noqa: E402, F401


def plugins_on_sys_path_only(tmp_path, monkeypatch):
    """``plugpkg.meth`` (a dotted path) and ``ep_plug`` (an entry point of ``eppkg.meth``) in a
    folder on this process's sys.path, which a fresh process does not inherit."""
    src = tmp_path / "src"
    write_plugin(src)
    write_entry_points(src, {"ep_plug": write_plugin(src, package="eppkg")})
    monkeypatch.syspath_prepend(str(src))
    assert str(src) not in os.environ.get("PYTHONPATH", "")
    return src


def test_local_sweep_jobs_find_a_dotted_path_and_an_entry_point_plugin(tmp_path, monkeypatch):
    src = plugins_on_sys_path_only(tmp_path, monkeypatch)
    spec = load_spec(tiny_spec(tmp_path, "method: [plugpkg.meth, ep_plug]\ngamma: [0.5]\n"))
    assert import_paths(["plugpkg.meth", "ep_plug"]) == [str(src.resolve())]
    result = run_sweep(spec, options(tmp_path), workers=2)
    assert not result.failed, result.report()
    assert sorted(result.done) == sorted(c.run_id for c in spec.configs())
    for config in spec.configs():
        run = RunDir(tmp_path / "results", config.run_id)
        assert run.read_summary()["status"] == "finished"
        assert (run.read_config().method, run.read_config().hparams) == (config.method, {"gamma": 0.5})
    assert sorted(c.method for c in spec.configs()) == ["ep_plug", "plugpkg.meth"]


def test_spawned_cells_find_a_plugin_from_the_paths_their_job_was_handed(tmp_path, monkeypatch):
    src = plugins_on_sys_path_only(tmp_path, monkeypatch)
    configs = load_spec(tiny_spec(tmp_path, "method: [plugpkg.meth, ep_plug]\n")).configs()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(src)])  # as in a fresh job process
    outcomes = train_cells(configs, options(tmp_path), "tiny", share="processes", paths=(str(src),))
    assert outcomes == [{"status": "done", "reason": None}] * 2
    assert str(src) in sys.path  # the job's first step, which its spawned cells inherit
