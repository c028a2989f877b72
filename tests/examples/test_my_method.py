"""The worked example, examples/my_method: its math against the definition, then installed into a
temporary target as a user installs it, swept beside Fast-AT and reported under its own label
and colour."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from suite.errors import SuiteError
from suite.methods import resolve_hparams
from suite.methods.perturbation import drawing_from
from suite.report.palette import color
from tests.experiments.test_sweep import tiny_spec
from tests.methods.test_methods import InputRecorder, batch, param_grads, small_model
from tests.plugins import forget_plugin_modules  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "my_method"
EPS = 8 / 255


@pytest.fixture
def my_fgsm(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.import_module("my_method.my_fgsm")


def test_my_fgsm_is_one_signed_step_of_gamma_eps_from_the_random_start(my_fgsm):
    model, (x, y) = small_model(), batch()
    gamma = 2.0  # a step of 2 eps from inside the ball: the projection clips most coordinates
    torch.manual_seed(3)
    start = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1) - x  # the definition's draw
    start.requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x + start), y), start)
    delta = ((x + (start.detach() + gamma * EPS * grad.sign()).clamp(-EPS, EPS)).clamp(0, 1) - x).detach()
    expected = torch.autograd.grad(F.cross_entropy(model(x + delta), y), list(model.parameters()))

    recorder = InputRecorder(model)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    loss, logits = my_fgsm.step(recorder, x, y, EPS, gamma=gamma)
    trained_on = recorder.last_input - x
    torch.testing.assert_close(trained_on, delta, rtol=0, atol=1e-12)
    assert trained_on.abs().max() <= EPS + 1e-12 and recorder.last_input.min() >= 0 and recorder.last_input.max() <= 1
    assert (trained_on.abs() >= EPS - 1e-12).double().mean() > 0.5
    for got, want in zip(param_grads(model), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss, F.cross_entropy(model(x + delta), y))
    assert logits.shape == (len(y), 10)


def test_my_fgsm_draws_from_the_runs_generator_and_refuses_a_zero_step(my_fgsm):
    model, (x, y) = small_model(), batch()

    def grads(seed):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(seed + 100)  # the global generator differs: the run's generator decides
        with drawing_from(torch.Generator().manual_seed(seed)):
            my_fgsm.step(model, x, y, EPS, gamma=1.25)
        return param_grads(model)

    assert all(torch.equal(a, b) for a, b in zip(grads(0), grads(0)))
    assert not all(torch.equal(a, b) for a, b in zip(grads(0), grads(1)))
    assert resolve_hparams("my_method.my_fgsm", 8, {}) == {"gamma": 1.25}
    with pytest.raises(SuiteError, match="my_fgsm: gamma must be above 0, got 0"):
        resolve_hparams("my_method.my_fgsm", 8, {"gamma": 0})
    assert set(my_fgsm.HELP) == set(my_fgsm.defaults(8)) and my_fgsm.LABEL == "My FGSM"
    assert my_fgsm.COLOR != color("fast_at")


def suite_cli(*args, env, cwd):
    done = subprocess.run(
        [sys.executable, "-m", "suite.cli", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def example_report(tmp_path_factory):
    """pip-installs a copy of the example into a temporary target (no network, no build isolation),
    runs a one-epoch sweep of ``my_fgsm`` (its entry point) beside ``fast_at``, then ``suite report``."""
    tmp = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--target", str(tmp / "site"), str(tmp / "src")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    entry_points = next((tmp / "site").glob("my_method-*.dist-info")) / "entry_points.txt"
    assert entry_points.read_text().split() == ["[suite.methods]", "my_fgsm", "=", "my_method.my_fgsm"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp / "site"), str(REPO), os.environ.get("PYTHONPATH")])),
    }
    spec = tiny_spec(tmp, "method: [fast_at, my_fgsm]\n", name="example")
    common = ["--results-dir", tmp / "results"]
    sweep = suite_cli(
        "sweep", spec, *common, "--workers", 2, "--device", "cpu", "--no-download", "--quiet", env=env, cwd=tmp
    )
    assert "2 done, 0 skipped, 0 failed" in sweep.stdout
    suite_cli(
        "report", "--sweep", spec, *common, "--reports-dir", tmp / "reports", "--name", "example", env=env, cwd=tmp
    )
    return tmp / "reports" / "example"


def table_rows(report: Path) -> set[str]:
    """The first cells of the report's table rows (a method's label in the method tables)."""
    return {
        line.split("|")[1].strip() for line in (report / "report.md").read_text().splitlines() if line.startswith("|")
    }


def test_the_example_sweeps_beside_fast_at_and_enters_the_report(example_report):
    text = (example_report / "report.md").read_text()
    assert "Fast-AT" in text and ("My FGSM" in text or "my_fgsm" in text)
    runs = (example_report / "runs.csv").read_text()
    assert "my_fgsm-fashion_mnist-small_cnn-eps8-s0" in runs and "fast_at-fashion_mnist-small_cnn-eps8-s0" in runs


def pixels_near(png: Path, hex_colour: str, tolerance: float = 0.03) -> int:
    import matplotlib.image

    image = matplotlib.image.imread(png)[..., :3]
    rgb = torch.tensor([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int(((torch.from_numpy(image.copy()) - rgb).abs().max(dim=-1).values < tolerance).sum())


def test_the_report_shows_the_plugin_under_its_own_label_and_colour(example_report):
    rows = table_rows(example_report)
    assert "My FGSM" in rows and "Fast-AT" in rows and "my_fgsm" not in rows
    figure = example_report / "robust_vs_eps.png"
    assert pixels_near(figure, "#17becf") > 20 and pixels_near(figure, color("fast_at")) > 20


def test_the_plugins_record_says_where_it_came_from(example_report):
    """The record names the entry point, its distribution and the folder it was imported from."""
    results = example_report.parent.parent / "results" / "runs"
    (run,) = [p for p in results.iterdir() if p.name.startswith("my_fgsm-")]
    summary = json.loads((run / "summary.json").read_text())
    source = summary["method_source"]
    assert source["entry_point"] == "my_fgsm = my_method.my_fgsm"
    assert source["distribution"] == "my-method 0.1.0"
    assert any(Path(p).name == "site" for p in source["import_paths"])
    assert summary["method_module"] == "my_method.my_fgsm" and len(summary["method_code"]) == 16
    (builtin,) = [p for p in results.iterdir() if p.name.startswith("fast_at-")]
    assert json.loads((builtin / "summary.json").read_text())["method_source"] is None
