"""suite tune searches any method's hyperparameters: the default search and the couplings come from
the method's file, and the trials table, trial names and the report's figure use the searched names."""

from __future__ import annotations

import os

os.environ.setdefault("SUITE_WANDB", "disabled")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from suite.config import RunOptions  # noqa: E402
from suite.errors import SuiteError  # noqa: E402
from suite.experiments.tune import best_params, load_spec, run_study  # noqa: E402
from suite.experiments.tune.study import trial_name  # noqa: E402
from suite.report import figures as figs  # noqa: E402

PLUGIN = """
import torch.nn.functional as F

from suite.methods.perturbation import signed_step, uniform_init

LABEL = "Tuned FGSM"
COLOR = "#123456"
HELP = {"gamma": "step as a multiple of eps"}
SEARCH = {"gamma": {"low": 0.5, "high": 2.0, "log": False}}
SYMBOLS = {"gamma": "γ"}


def defaults(eps):
    return {"gamma": 1.0}


def step(model, x, y, eps, *, gamma):
    delta = signed_step(model, x, y, uniform_init(x, eps), eps, gamma * eps)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
"""
TINY = {
    "dataset": "fashion_mnist",
    "arch": "small_cnn",
    "eps": 32,
    "epochs": 1,
    "train_points": 128,
    "val_points": 32,
    "test_points": 32,
    "aa_points": 0,
    "co_points": 0,
    "pgd_steps": 2,
    "pgd_restarts": 1,
    "val_pgd_steps": 2,
    "batch_size": 64,
}


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    pkg = tmp_path / "tunepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "meth.py").write_text(PLUGIN)
    (pkg / "bare.py").write_text("def defaults(eps):\n    return {'k': 1.0}\n\ndef step(*a, **k):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return "tunepkg.meth"


def spec(method: str, **extra) -> dict:
    return {"name": "generic", "base": {**TINY, "method": method}, "pruner": "none", **extra}


def test_the_default_search_is_the_methods_own(plugin):
    assert load_spec(spec("fast_bat")).search == {"lmbda": {"low": 0.01, "high": 1000.0, "log": True}}
    assert load_spec(spec(plugin)).search == {"gamma": {"low": 0.5, "high": 2.0, "log": False}}
    assert load_spec(spec(plugin), ["gamma=[1, 3]"]).search == {"gamma": {"low": 1.0, "high": 3.0, "log": True}}
    with pytest.raises(SuiteError, match="method 'tunepkg.bare' declares no SEARCH"):
        load_spec(spec("tunepkg.bare"))
    assert load_spec(spec("tunepkg.bare", search={"k": [1, 2]})).search["k"]["high"] == 2.0


def test_coupled_is_the_methods_declaration(plugin):
    coupled = load_spec(spec("fast_bat"), ["coupled=true"])  # no search given: the method's, coupled
    assert coupled.search == {"lmbda": {"low": 0.01, "high": 1000.0, "log": True}}
    assert coupled.derived({"lmbda": 5.0}) == {"lmbda": 5.0, "ll_step": 51.0}
    with pytest.raises(SuiteError, match="coupled: true derives ll_step = 255/lmbda: search lmbda, and set ll_step"):
        load_spec(spec("fast_bat", search={"ll_step": [10, 100], "coupled": True}))
    with pytest.raises(SuiteError, match="method 'tunepkg.meth' declares no coupled hyperparameters"):
        load_spec(spec(plugin), ["coupled=true"])


def test_a_plugin_study_names_its_trials_tables_and_figure_by_what_it_searched(plugin, tmp_path):
    path = tmp_path / "generic.yaml"
    path.write_text(yaml.safe_dump(spec(plugin, n_trials=2, sampler={"name": "random", "seed": 0})))
    opts = RunOptions(results_dir=tmp_path / "results", progress=False, wandb="disabled")
    study = run_study(path, opts)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(0.5 <= t.params["gamma"] <= 2.0 for t in study.trials)
    frame = pd.read_csv(opts.results_dir / "studies" / "generic.csv")
    assert list(frame.columns[:3]) == ["trial", "state", "gamma"]
    assert set(frame["method"]) == {plugin} and set(frame["searched"]) == {"gamma"}
    assert "lmbda" not in frame and "ll_step" not in frame
    assert set(best_params(path, results_dir=opts.results_dir)) == {"gamma"}
    config = load_spec(path).run_config({"gamma": 1.234}).resolved()
    assert trial_name(config, 3, {"gamma": 1.234}, ["gamma"]).endswith("-trial3-gamma1.23")

    fig = figs.tune_sensitivity(frame)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"  # 0.5 to 2 spans less than a decade
    assert ax.get_xlabel() == "γ" and ax.get_title().startswith("Tuned FGSM: γ sensitivity, 2 trials")
    assert {line.get_color() for line in ax.get_lines()} == {"#123456"}
    assert sorted(ax.get_lines()[0].get_xdata()) == sorted(frame["gamma"])


def test_the_figure_plots_the_first_searched_hyperparameter_of_an_older_export():
    old = pd.DataFrame(  # no method or searched column: the hyperparameter columns after state
        {"trial": [0, 1], "state": ["COMPLETE"] * 2, "lmbda": [0.1, 10.0], "ll_step": 5000.0, "val_robust_acc": [1, 2]}
    )
    ax = figs.tune_sensitivity(old).axes[0]
    assert ax.get_xlabel() == "λ (log scale)" and ax.get_title().startswith("Fast-BAT: λ sensitivity")
    coupled = old.assign(ll_step=[2550.0, 25.5], method="fast_bat", searched="lmbda")
    assert "also searched" not in figs.tune_sensitivity(coupled).axes[0].get_title()  # derived, not searched
    both = coupled.assign(searched="lmbda,ll_step")
    assert "(ll_step also searched)" in figs.tune_sensitivity(both).axes[0].get_title()
