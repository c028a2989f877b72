"""``suite reproduce``: presets, their listing and cost, and one tiny preset end to end.

The end-to-end test trains for real (Fashion-MNIST from the system copy, a few hundred
points, one epoch) through tiny specs written under tmp_path and ``--sweeps-dir``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from suite.cli import main as cli_main
from suite.config import RunConfig
from suite.experiments.presets import PRESETS, epoch_cost_factors, make_plan, run_cost, spec_path, study_overrides
from suite.methods import METHODS
from suite.report.tables import paper_table
from suite.store.atomic import read_json
from suite.store.run_dir import iter_run_dirs

TINY = (
    "dataset: fashion_mnist, arch: small_cnn, epochs: 3, train_points: 128, val_points: 32, test_points: 32, "
    "aa_points: 0, co_points: 16, pgd_steps: 2, pgd_restarts: 1, val_pgd_steps: 2, batch_size: 64"
)
RUN_FLAGS = ["--device", "cpu", "--no-download", "--quiet", "--wandb", "disabled"]


@pytest.fixture
def sweeps(tmp_path) -> Path:
    """A tiny smoke preset: two sweeps (standard and fast_at at eps 8; fast_at on injected data, the
    CO setting) and a two-trial λ study."""
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "smoke.yaml").write_text(
        textwrap.dedent(f"""
        name: smoke
        base: {{{TINY}}}
        grid:
          method: [standard, fast_at]
          eps: [8]
        """)
    )
    (folder / "smoke_co.yaml").write_text(
        textwrap.dedent(f"""
        name: smoke_co
        base: {{inject_beta: 16, {TINY}}}
        grid:
          method: [fast_at]
          eps: [8]
        """)
    )
    (folder / "lambda_smoke.yaml").write_text(
        textwrap.dedent(f"""
        name: lam_tiny
        base: {{method: fast_bat, {TINY}}}
        search: {{lmbda: [0.1, 100]}}
        sampler: {{name: random, seed: 0}}
        pruner: none
        n_trials: 2
        """)
    )
    return folder


def test_every_preset_names_specs_that_exist_and_expand():
    for preset in PRESETS.values():
        plan = make_plan(preset)
        assert plan.configs or plan.study_spec, preset.name
        for name in preset.sweeps + ((preset.study,) if preset.study else ()):
            assert spec_path(name).is_file()


def test_cost_factors_count_passes_and_take_the_papers_ratios():
    factors = epoch_cost_factors()
    seconds = paper_table().groupby("method")["time_per_epoch_s"].first()
    assert factors["fast_bat"] == pytest.approx(seconds["fast_bat"] / seconds["fast_at"])
    cost = lambda method, **hp: run_cost(RunConfig(method=method, epochs=4, hparams=hp).resolved())  # noqa: E731
    assert cost("fast_at") == 4 and cost("standard") == 2
    assert cost("pgd", steps=2) == pytest.approx(4 * 1.5) and cost("pgd") == pytest.approx(4 * 5.5)
    assert cost("fast_at_ga") == pytest.approx(4 * seconds["fast_at_ga"] / seconds["fast_at"])
    assert cost("fgsm") == 4 and cost("n_fgsm") == 4  # one extra pass, as Fast-AT
    assert all(cost(method) > 0 for method in METHODS), "every registered method needs a cost factor"


def test_only_plain_run_settings_reach_the_study():
    kept = study_overrides(
        ["epochs=1", "seeds=3", "eps=[8]", "method=fast_at", "lmbda=1", "train_points=64", "dataset=[svhn]"],
        ["n_trials=2"],
    )
    assert kept == ["epochs=1", "train_points=64", "n_trials=2"]


def test_list_shows_runs_trials_epochs_and_cost(sweeps, tmp_path, capsys):
    args = ["reproduce", "--list", "--sweeps-dir", str(sweeps), "--results-dir", str(tmp_path / "r")]
    assert cli_main(args) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("smoke"))
    fields = line.split()
    expected = 3 * (0.5 + 1.0 + 1.0) + 2 * 3 * epoch_cost_factors()["fast_bat"]  # standard, 2 fast_at, 2 trials
    assert fields[1:5] == ["3", "0", "2", "3"] and float(fields[5]) == pytest.approx(expected, abs=0.5)
    assert cli_main(args + ["--set", "seeds=[0,1,2]", "--set", "epochs=1", "--study-set", "n_trials=4"]) == 0
    fields = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("smoke")).split()
    assert fields[1:5] == ["9", "0", "4", "1"]


def test_reproduce_runs_sweep_study_and_report_then_resumes(sweeps, tmp_path, capsys):
    results, reports = tmp_path / "results", tmp_path / "reports"
    args = [
        "reproduce",
        "smoke",
        "--sweeps-dir",
        str(sweeps),
        "--results-dir",
        str(results),
        "--reports-dir",
        str(reports),
        "--set",
        "epochs=1",
        "--set",
        "method=[fast_at]",
        "--study-set",
        "n_trials=1",
        *RUN_FLAGS,
    ]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "1 done, 0 skipped, 0 failed" in out and str(reports / "smoke" / "report.html") in out
    configs = [read_json(run.config)["config"] for run in iter_run_dirs(results)]
    assert sorted(c["method"] for c in configs) == ["fast_at", "fast_at", "fast_bat"]
    assert sorted(str(c.get("inject_beta")) for c in configs) == ["16.0", "None", "None"]
    assert {c["epochs"] for c in configs} == {1}  # --set reached the sweep and the study
    trials = pd.read_csv(results / "studies" / "lam_tiny.csv")
    assert list(trials["state"]) == ["COMPLETE"]
    runs = pd.read_csv(reports / "smoke" / "runs.csv")
    assert list(runs["method"]) == ["fast_at", "fast_at"]  # the report holds the sweeps' runs
    assert len(set(runs["dataset"])) == 2  # the injected data are a setting of their own
    assert (reports / "smoke" / "lambda_sensitivity.png").exists()
    assert cli_main(args) == 0  # rerun: nothing is trained again
    out = capsys.readouterr().out
    assert "0 done, 1 skipped" in out and "0 to run" in out
    assert len(pd.read_csv(results / "studies" / "lam_tiny.csv")) == 1
    assert len(list(iter_run_dirs(results))) == 3


def test_no_wait_needs_slurm(sweeps, capsys):
    """--no-wait submits and returns (tests/experiments/test_slurm.py runs it on a real Slurm); local
    runs would stop with the command."""
    assert cli_main(["reproduce", "smoke", "--sweeps-dir", str(sweeps), "--no-wait", *RUN_FLAGS]) == 2
    assert "--no-wait needs --executor slurm" in capsys.readouterr().err
