"""Plug-in methods wherever a method is named: specs and --set, studies, filters, bench, the CLI's refusals."""

from __future__ import annotations

import importlib.metadata
import os
import sys

import pytest

os.environ.setdefault("SUITE_WANDB", "disabled")

from suite.cli import main  # noqa: E402
from suite.config.settings import valid_keys  # noqa: E402
from suite.errors import SuiteError  # noqa: E402
from suite.experiments.sweep import load_spec  # noqa: E402
from suite.experiments.tune import spec as study_spec  # noqa: E402
from suite.methods import get_method  # noqa: E402
from suite.methods.plugins import import_paths  # noqa: E402
from suite.perf.settings import Settings, method_variants, resolve  # noqa: E402
from tests.experiments.test_sweep import TINY_BASE, tiny_spec  # noqa: E402
from tests.plugins import forget_plugin_modules, write_entry_points, write_plugin  # noqa: E402, F401

TINY_FLAGS = ["--epochs", "1", "--train-points", "64", "--batch-size", "32", "--aa-points", "0", "--device", "cpu"]


@pytest.fixture
def plugin(tmp_path, monkeypatch) -> str:
    """A dotted-path plug-in on sys.path, also registered as the entry point ``my_plug``."""
    src = tmp_path / "src"
    path = write_plugin(src)
    write_entry_points(src, {"my_plug": path})
    monkeypatch.syspath_prepend(str(src))
    return path


def test_a_grid_mixes_built_ins_and_a_dotted_path_plugin_with_its_own_hyperparameter(tmp_path, plugin):
    configs = {
        c.method: c for c in load_spec(tiny_spec(tmp_path, f"method: [fast_at, {plugin}]\ngamma: [2]\n")).configs()
    }
    assert set(configs) == {"fast_at", plugin}
    assert configs[plugin].hparams == {"gamma": 2.0}  # the plug-in's key, typed by its default
    assert configs["fast_at"].hparams == {"alpha_factor": 1.25}  # gamma reaches only the plug-in
    pinned = load_spec(tiny_spec(tmp_path, "method: [fast_at]\n", name="set"), [f"method={plugin}", "gamma=3"])
    assert [(c.method, c.hparams) for c in pinned.configs()] == [(plugin, {"gamma": 3.0})]


def test_an_entry_point_names_a_method_in_specs_and_typos_suggest_it(tmp_path, plugin):
    (config,) = load_spec(tiny_spec(tmp_path, "method: [my_plug]\ngamma: [0.5]\n")).configs()
    assert (config.method, config.hparams) == ("my_plug", {"gamma": 0.5})
    with pytest.raises(SuiteError, match=r"typo.yaml line 16: unknown method 'my_plgu' \(did you mean 'my_plug'\?\)"):
        load_spec(tiny_spec(tmp_path, "method: [my_plgu]\n", name="typo"))
    with pytest.raises(SuiteError, match=r"did you mean 'fast_bat'\?\); choose one of: standard, .*fast_bat, my_plug"):
        load_spec(tiny_spec(tmp_path, "method: [fast_btat]\n", name="typo2"))
    with pytest.raises(SuiteError, match="unknown key 'gamma'"):  # no method of this spec has a gamma
        load_spec(tiny_spec(tmp_path, "method: [fast_at]\ngamma: [2]\n", name="nogamma"))


def test_built_in_methods_never_scan_the_installed_plugins(tmp_path, monkeypatch):
    def scan(**_):
        raise AssertionError("entry points scanned for built-in methods")

    monkeypatch.setattr(importlib.metadata, "entry_points", scan)
    configs = load_spec(tiny_spec(tmp_path, "method: [fast_at, fast_bat, pgd]\nsteps: [2]\n")).configs()
    assert len(configs) == 3 and "lmbda" in valid_keys() and get_method("fast_at").defaults(8)
    assert import_paths(["fast_at", "fast_bat"]) == []


def test_a_study_searches_a_plugins_hyperparameter(plugin):
    spec = study_spec.load_spec(
        {"name": "plug", "base": {**TINY_BASE, "method": plugin}, "search": {"gamma": [0.5, 2]}}
    )
    assert spec.search == {"gamma": {"low": 0.5, "high": 2.0, "log": True}}
    assert spec.run_config({"gamma": 1}).resolved().hparams == {"gamma": 1.0}
    by_set = study_spec.load_spec(
        {"name": "plug", "base": TINY_BASE, "search": {"gamma": [0.5, 2]}}, ["method=my_plug"]
    )
    assert by_set.run_config({"gamma": 1}).resolved().method == "my_plug"


def test_bench_resolves_plugins_before_measuring(plugin):
    settings, _ = resolve(
        Settings(arch="small_cnn", dataset="fashion_mnist", device="cpu", quick=True, methods=(plugin,))
    )
    assert method_variants(settings)[-1] == (plugin, plugin, {})
    with pytest.raises(SuiteError, match="unknown method 'my_plgu' \\(did you mean 'my_plug'\\?\\)"):
        resolve(Settings(device="cpu", quick=True, methods=("my_plgu",)))


def test_filters_and_the_baseline_take_plugin_names(tmp_path, plugin, capsys):
    assert main(["runs", "--results-dir", str(tmp_path), "--method", "my_plug", plugin]) == 0
    assert main(["runs", "--results-dir", str(tmp_path), "--method", "my_plgu"]) == 2
    assert "did you mean 'my_plug'?" in capsys.readouterr().err
    assert main(["report", "--results-dir", str(tmp_path), "--baseline", "my_plgu"]) == 2
    assert "unknown baseline method 'my_plgu' (did you mean 'my_plug'?)" in capsys.readouterr().err


def test_a_dotted_path_finds_a_package_in_the_working_directory(tmp_path, monkeypatch):
    """The ``suite`` script's sys.path lacks the working directory; ``python -m`` would have it."""
    write_plugin(tmp_path, package="cwdpkg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert get_method("cwdpkg.meth").defaults(8) == {"gamma": 1.0}
    assert sys.path[-1] == str(tmp_path)  # appended: it never shadows an installed module
    assert import_paths(["cwdpkg.meth"]) == [str(tmp_path.resolve())]  # what a sweep's jobs are handed


def test_cli_refuses_an_import_error_and_a_clash_in_one_line_before_writing(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    write_plugin(src, package="brokenpkg", source="raise ImportError('no module named torch_xla')\n")
    monkeypatch.syspath_prepend(str(src))
    results = tmp_path / "results"
    assert main(["run", "--method", "brokenpkg.meth", *TINY_FLAGS, "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        "error: method 'brokenpkg.meth': cannot import module 'brokenpkg.meth' (ImportError: no module named torch_xla)"
    ]
    spec = tiny_spec(tmp_path, "method: [fast_at, brokenpkg.meth]\n")
    assert main(["sweep", str(spec), "--results-dir", str(results), "--device", "cpu", "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {spec} line 16: method 'brokenpkg.meth': cannot import module")
    path = write_plugin(src)
    write_entry_points(src, {"fast_at": path, "my_plug": path})
    assert main(["run", "--method", "my_plug", *TINY_FLAGS, "--results-dir", str(results)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: plug-in method name 'fast_at' clashes with a built-in method; rename its entry point"
    ]
    assert not results.exists()
