"""Sweeps: spec expansion and validation, local launching, relaunching, Slurm job arrays."""

from __future__ import annotations

import collections
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("SUITE_WANDB", "disabled")

from suite.config import RunOptions  # noqa: E402
from suite.errors import SuiteError  # noqa: E402
from suite.experiments.launch import run_sweep
from suite.experiments.sweep import load_spec  # noqa: E402
from suite.store.run_dir import RunDir  # noqa: E402

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"
TINY_BASE = dict(
    dataset="fashion_mnist",
    arch="small_cnn",
    epochs=1,
    train_points=256,
    val_points=64,
    test_points=64,
    aa_points=0,
    co_points=32,
    pgd_steps=3,
    pgd_restarts=1,
    val_pgd_steps=2,
    batch_size=64,
)


def write_spec(folder: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def tiny_spec(folder: Path, grid: str, name: str = "tiny", extra: str = "") -> Path:
    base = "\n".join(f"  {k}: {v}" for k, v in TINY_BASE.items())
    return write_spec(
        folder,
        f"name: {name}\nbase:\n{base}\ngrid:\n{textwrap.indent(textwrap.dedent(grid), '  ')}{extra}",
        f"{name}.yaml",
    )


def options(tmp_path) -> RunOptions:
    return RunOptions(results_dir=tmp_path / "results", device="cpu", download=False, progress=False, wandb="disabled")


def sweep_cli(*args, cwd) -> subprocess.CompletedProcess:
    """``suite sweep`` in a subprocess, as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "suite.cli",
            "sweep",
            *map(str, args),
            "--device",
            "cpu",
            "--no-download",
            "--quiet",
            "--wandb",
            "disabled",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


# -- the shipped specs ---------------------------------------------------------------------


def by_cell(configs):
    return {(c.method, c.eps, c.seed, c.arch, c.dataset): c for c in configs}


def test_table1_expands_to_the_papers_grid():
    configs = load_spec(SWEEPS / "table1.yaml").configs()
    assert len(configs) == 4 * 2 * 10  # (3 methods + PGD-2) x 2 eps x 10 seeds
    assert len({c.run_id for c in configs}) == len(configs)
    cells = by_cell(configs)
    fast_bat = cells["fast_bat", 8.0, 0, "preact_resnet18", "cifar10"].hparams
    assert (fast_bat["lmbda"], fast_bat["ll_step"]) == (10.0, 5000.0)
    assert cells["fast_bat", 16.0, 9, "preact_resnet18", "cifar10"].hparams["ll_step"] == 2000.0
    assert cells["pgd", 16.0, 3, "preact_resnet18", "cifar10"].hparams["steps"] == 2
    assert (
        cells["fast_at_ga", 16.0, 0, "preact_resnet18", "cifar10"].hparams["coef"]
        > cells["fast_at_ga", 8.0, 0, "preact_resnet18", "cifar10"].hparams["coef"]
    )
    c = configs[0]
    assert (c.epochs, c.batch_size, c.lr, c.lr_schedule, c.val_points, c.pgd_steps, c.pgd_restarts, c.aa_points) == (
        20,
        128,
        0.2,
        "cyclic",
        1000,
        50,
        10,
        1000,
    )


def test_sweep_ids_equal_suite_run_ids():
    """A cell of a sweep is the same run as the same settings given to ``suite run``."""
    from suite.config import RunConfig

    cell = by_cell(load_spec(SWEEPS / "table1.yaml").configs())["fast_bat", 8.0, 0, "preact_resnet18", "cifar10"]
    direct = RunConfig(
        method="fast_bat",
        dataset="cifar10",
        arch="preact_resnet18",
        eps=8,
        epochs=20,
        batch_size=128,
        lr=0.2,
        val_points=1000,
        pgd_steps=50,
        pgd_restarts=10,
        aa_points=1000,
    ).resolved()
    assert cell.run_id == direct.run_id


@pytest.mark.parametrize(
    "name, count, methods, axis",
    [
        (
            "co_eps",
            7 * 8,
            {"standard", "fgsm", "fast_at", "n_fgsm", "fast_at_ga", "fast_bat", "pgd"},
            ("eps", {2.0 * k for k in range(1, 9)}),
        ),
        (
            "archs",
            3 * 6 * 2,
            {"fgsm", "fast_at", "n_fgsm", "fast_at_ga", "fast_bat", "pgd"},
            ("arch", {"wrn16_8", "resnet18", "resnet50"}),
        ),
        (
            "datasets",
            3 * 4 * 2,
            {"fast_at", "fast_at_ga", "fast_bat", "pgd"},
            ("dataset", {"cifar100", "svhn", "tiny_imagenet"}),
        ),
        ("smoke", None, {"standard", "fast_at", "fast_at_ga", "fast_bat", "pgd"}, ("dataset", {"fashion_mnist"})),
    ],
)
def test_other_specs_expand(name, count, methods, axis):
    configs = load_spec(SWEEPS / f"{name}.yaml").configs()
    assert count is None or len(configs) == count
    assert len({c.run_id for c in configs}) == len(configs)
    assert {c.method for c in configs} == methods
    assert {getattr(c, axis[0]) for c in configs} == axis[1]
    assert all(c.hparams["steps"] == 2 for c in configs if c.method == "pgd")
    if name == "datasets":
        assert {c.lr for c in configs if c.dataset == "svhn"} == {0.05}
        assert {c.lr for c in configs if c.dataset != "svhn"} == {0.2}


def test_smoke_spec_is_small():
    configs = load_spec(SWEEPS / "smoke.yaml").configs()
    assert {c.arch for c in configs} == {"small_cnn"} and len(configs) <= 25
    assert max(c.eps for c in configs) >= 32  # Fashion-MNIST needs large eps to be hard
    coef = {c.eps: c.hparams["coef"] for c in configs if c.method == "fast_at_ga"}
    assert coef[8] == 0.2 and coef[32] == 2.0  # GradAlign's CIFAR rule would give 200


def test_smoke_co_spec_runs_every_fast_method_on_three_seeds_with_injected_features():
    configs = load_spec(SWEEPS / "smoke_co.yaml").configs()
    assert {c.method for c in configs} >= {"fast_at", "fast_bat", "fast_at_ga"}
    assert all(sum(c.method == m for c in configs) >= 3 for m in {c.method for c in configs})
    assert all(c.inject_beta and c.inject_beta < c.eps for c in configs)
    assert {c.hparams["coef"] for c in configs if c.method == "fast_at_ga"} == {2.0}


def test_set_overrides_grid_and_base():
    spec = load_spec(
        SWEEPS / "table1.yaml",
        ["seeds=[0, 1]", "eps=[8]", "epochs=5", "lr=[0.1, 0.2]", "method=fast_bat", "ll_step=3000"],
    )
    configs = spec.configs()
    assert len(configs) == 2 * 2  # 2 seeds x 2 lr
    assert {(c.seed, c.lr) for c in configs} == {(0, 0.1), (0, 0.2), (1, 0.1), (1, 0.2)}
    assert all(c.epochs == 5 and c.eps == 8 and c.hparams["ll_step"] == 3000 for c in configs)
    assert len(load_spec(SWEEPS / "table1.yaml", ["seeds=3"]).configs()) == 4 * 2 * 3


def test_hyperparameter_grid_applies_only_to_its_method(tmp_path):
    spec = tiny_spec(tmp_path, "method: [fast_at, fast_bat]\nlmbda: [1, 10]\n")
    configs = load_spec(spec).configs()
    assert sorted((c.method, c.hparams.get("lmbda")) for c in configs) == [
        ("fast_at", None),
        ("fast_bat", 1.0),
        ("fast_bat", 10.0),
    ]  # fast_at's two cells are one run


# -- refusing bad specs --------------------------------------------------------------------


@pytest.mark.parametrize(
    "grid, line, message",
    [
        ("method: [fast_at]\nepoch: [5]\n", 17, "unknown key 'epoch' (did you mean 'epochs'?)"),
        ("method:\n  - fast_at\n  - fast_bta\n", 18, "unknown method 'fast_bta' (did you mean 'fast_bat'?)"),
        ("arch: [small_cnn, resnet19]\n", 16, "unknown arch 'resnet19'"),
        ("method: [fast_at]\nepochs: [two]\n", 17, "epochs must be int, got 'two'"),
        ("method: [fast_at]\nlmbda: [1]\n", 17, "'lmbda' is a hyperparameter of no method"),
    ],
)
def test_bad_spec_is_refused_with_its_line(tmp_path, grid, line, message):
    spec = tiny_spec(tmp_path, grid)
    with pytest.raises(SuiteError) as err:
        load_spec(spec)
    assert f"{spec} line {line}: {message}" in str(err.value)


def test_bad_overrides_and_set_flags_are_refused(tmp_path):
    spec = tiny_spec(
        tmp_path, "method: [fast_at]\n", extra="overrides:\n  - when: {method: fast_at}\n    set: {alpha_factr: 1.0}\n"
    )
    with pytest.raises(SuiteError, match=r"line 19: unknown key 'alpha_factr' \(did you mean 'alpha_factor'\?\)"):
        load_spec(spec)
    good = tiny_spec(tmp_path, "method: [fast_at]\n", name="good")
    with pytest.raises(SuiteError, match=r"--set epoch=3: unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        load_spec(good, ["epoch=3"])
    with pytest.raises(SuiteError, match="--set method=pgdd: unknown method 'pgdd'"):
        load_spec(good, ["method=pgdd"])
    with pytest.raises(SuiteError, match=r"run \(method=fast_at\): eps must be in"):
        load_spec(good, ["eps=0"])


@pytest.mark.parametrize(
    "setting, message",
    [
        ("lr=.nan", "lr must be finite, got nan"),
        ("lr=-1", "lr must be above 0"),
        ("momentum=1", "momentum must be below 1"),
        ("seed=-2", "seed must be at least 0"),
        ("lmbda=[-1]", "fast_bat hyperparameter lmbda must be above 0, got -1"),
        ("lmbda=[.inf]", "fast_bat hyperparameter lmbda must be finite"),
    ],
)
def test_numbers_are_checked_by_the_same_rules_in_specs_and_set(tmp_path, setting, message):
    """The flags' rules (test_run) hold for spec values and --set alike, before anything runs."""
    key, value = setting.split("=", 1)
    grid = f"method: [fast_bat]\n{key}: {value if value.startswith('[') else '[' + value + ']'}\n"
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_spec(tiny_spec(tmp_path, grid))
    if not value.startswith("["):
        with pytest.raises(SuiteError, match=re.escape(message)):
            load_spec(tiny_spec(tmp_path, "method: [fast_bat]\n", name="ok"), [setting])


def test_cli_refuses_a_bad_spec_before_starting(tmp_path):
    spec = tiny_spec(tmp_path, "method: [fast_at]\nepoch: [5]\n")
    done = sweep_cli(spec, "--results-dir", tmp_path / "results", cwd=tmp_path)
    assert done.returncode == 2
    assert f"{spec} line 17: unknown key 'epoch'" in done.stderr
    assert not (tmp_path / "results").exists()


def test_lambda_from_a_study(tmp_path, monkeypatch):
    import suite.experiments.tune

    asked = []
    monkeypatch.setattr(
        suite.experiments.tune,
        "best_params",
        lambda path, **kw: asked.append((path, kw)) or {"lmbda": 2.5, "ll_step": 102.0},
    )
    spec = tiny_spec(tmp_path, "method: [fast_bat, fast_at]\n")
    configs = load_spec(spec, ["lmbda=best:sweeps/lambda_smoke.yaml"], results_dir=tmp_path / "r").configs()
    assert [c.hparams.get("lmbda") for c in configs] == [2.5, None]
    assert configs[0].hparams["ll_step"] == 5000.0  # only the key asked for is taken
    assert asked == [("sweeps/lambda_smoke.yaml", {"results_dir": tmp_path / "r"})]
    monkeypatch.setattr(suite.experiments.tune, "best_params", lambda path, **kw: {"ll_step": 1.0})
    with pytest.raises(SuiteError, match="best trial has no 'lmbda'"):
        load_spec(spec, ["lmbda=best:sweeps/lambda_smoke.yaml"])


# -- launching -----------------------------------------------------------------------------


def test_job_function_groups_journals_and_respects_the_lock(tmp_path, monkeypatch):
    """In-process: the W&B group is the sweep name; a locked run is skipped, not failed."""
    import suite.tracking
    from suite.experiments.launch import train_cell

    groups = []
    monkeypatch.setattr(suite.tracking, "trackers", lambda options, group=None, **kw: groups.append(group) or [])
    config = load_spec(tiny_spec(tmp_path, "method: [standard]\n")).configs()[0]
    run = RunDir(tmp_path / "results", config.run_id)
    with run.lock():  # as if another process were training it
        assert train_cell(config, options(tmp_path), "tiny") == {"status": "skipped", "reason": "running elsewhere"}
    assert train_cell(config, options(tmp_path), "tiny") == {"status": "done", "reason": None}
    assert train_cell(config, options(tmp_path), "tiny") == {"status": "skipped", "reason": "finished"}
    assert groups == ["tiny", "tiny"]
    journal = tmp_path / "results" / "sweeps" / "tiny" / "journal.jsonl"
    assert [json.loads(line)["event"] for line in journal.read_text().splitlines()] == ["start", "finished"]


def test_local_workers_get_one_gpu_each():
    from suite.experiments.launch import _gpu_parameters

    assert _gpu_parameters(0, [], "auto") == {"gpus_per_node": 0}  # CPU: CUDA_VISIBLE_DEVICES=""
    assert [_gpu_parameters(slot, [2, 5], "auto")["visible_gpus"] for slot in range(4)] == [[2], [5], [2], [5]]
    assert _gpu_parameters(3, [2, 5], "cuda:1") == {"gpus_per_node": 2, "visible_gpus": [2, 5]}


def test_local_sweep_runs_then_skips(tmp_path, capsys):
    spec = load_spec(tiny_spec(tmp_path, "method: [standard, fast_at]\neps: [8]\n"))
    result = run_sweep(spec, options(tmp_path), workers=2)
    assert sorted(result.done) == sorted(c.run_id for c in spec.configs()) and not result.failed
    for config in spec.configs():
        assert RunDir(tmp_path / "results", config.run_id).read_summary()["status"] == "finished"
    logs = list((tmp_path / "results" / "sweeps" / "tiny" / "submitit").glob("*_log.out"))
    assert len(logs) == 2  # one job process per run, logs under the sweep
    again = run_sweep(spec, options(tmp_path), workers=2)
    assert again.done == [] and again.failed == [] and [r for _, r in again.skipped] == ["finished"] * 2
    assert len(list((tmp_path / "results" / "sweeps" / "tiny" / "submitit").glob("*_log.out"))) == 2


def test_failing_cell_does_not_stop_the_others(tmp_path):
    spec = tiny_spec(tmp_path, "method: [standard]\ntrain_points: [256, 32]\n")  # batch 64 > 32 points
    done = sweep_cli(spec, "--results-dir", tmp_path / "results", "--workers", 1, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 done, 0 skipped, 1 failed" in done.stdout
    assert "batch size 64 exceeds the 32 training points" in done.stdout
    listing = io.StringIO()
    dry = run_sweep(load_spec(spec), options(tmp_path), dry_run=True, out=listing)
    lines = listing.getvalue().splitlines()
    assert lines[0] == "sweep tiny: 2 runs, 1 finished, 1 to run"
    assert sorted(line.split(maxsplit=1)[1].strip() for line in lines[1:]) == ["done", "to run"]
    assert len(dry.skipped) == 1 and not dry.done and not dry.failed


def test_concurrent_sweeps_train_each_run_once(tmp_path):
    spec = tiny_spec(tmp_path, "method: [standard, pgd]\neps: [8]\nsteps: [2]\n")
    args = [
        spec,
        "--results-dir",
        tmp_path / "results",
        "--workers",
        1,
        "--device",
        "cpu",
        "--no-download",
        "--quiet",
        "--wandb",
        "disabled",
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "suite.cli", "sweep", *map(str, args)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    journal = tmp_path / "results" / "sweeps" / "tiny" / "journal.jsonl"
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    starts = collections.Counter(e["run_id"] for e in events if e["event"] == "start")
    run_ids = [c.run_id for c in load_spec(spec).configs()]
    assert starts == {run_id: 1 for run_id in run_ids}
    assert all(RunDir(tmp_path / "results", r).read_summary()["status"] == "finished" for r in run_ids)
    reports = [re.search(r"sweep tiny: (\d+) done, (\d+) skipped", out).groups() for out, _ in outputs]
    assert sum(int(done) for done, _ in reports) == len(run_ids)  # each run trained by one of them
    assert sum(int(skipped) for _, skipped in reports) == len(run_ids)  # and left alone by the other


# -- Slurm -----------------------------------------------------------------------------------


def test_slurm_submits_one_job_array(tmp_path, fake_slurm, capsys):
    from suite.cli import main

    spec = tiny_spec(tmp_path, "method: [standard, fast_at, fast_bat]\neps: [8]\n")
    code = main(
        [
            "sweep",
            str(spec),
            "--executor",
            "slurm",
            "--partition",
            "gpu",
            "--time",
            "90",
            "--gpus-per-job",
            "1",
            "--cpus-per-job",
            "6",
            "--array-parallelism",
            "2",
            "--slurm",
            "mem=16G",
            "--runs-per-gpu",
            "1",
            "--no-wait",
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "submitted job array 4242 (3 runs)" in out and "3 submitted" in out
    script = (fake_slurm / "submitted.sh").read_text().splitlines()
    for line in [
        "#SBATCH --array=0-2%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=90",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --mem=16G",
        "#SBATCH --job-name=sweep-tiny",
    ]:
        assert line in script
    folder = tmp_path / "results" / "sweeps" / "tiny" / "submitit"
    assert sorted(p.name for p in folder.glob("*_submitted.pkl")) == [f"4242_{i}_submitted.pkl" for i in range(3)]


def test_runs_per_gpu_defaults_by_device_and_graphs():
    from suite.experiments.launch import default_runs_per_gpu

    assert default_runs_per_gpu(True, cuda_graphs=False) == 4  # eager: host-bound, K runs pay
    assert default_runs_per_gpu(True, cuda_graphs=True) == 1  # graphed: one run fills the GPU
    assert default_runs_per_gpu(False, cuda_graphs=False) == default_runs_per_gpu(False, cuda_graphs=True) == 1


def test_slurm_needs_srun(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm commands at all
    spec = load_spec(tiny_spec(tmp_path, "method: [standard]\n"))
    with pytest.raises(SuiteError, match="needs the Slurm commands"):
        run_sweep(spec, options(tmp_path), executor="slurm", slurm={"time": 5})


def test_bad_slurm_parameter_is_refused(tmp_path, fake_slurm):
    spec = load_spec(tiny_spec(tmp_path, "method: [standard]\n"))
    with pytest.raises(SuiteError, match="bad Slurm parameter.*mem_gb"):
        run_sweep(spec, options(tmp_path), executor="slurm", slurm={"mem_gb": 16})


@pytest.mark.parametrize(
    "stderr, reason",
    [
        (  # the controller is down or unreachable
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
            "Batch job submission failed: Unable to contact slurm controller (connect failure)",
        ),
        (  # no slurm.conf and no DNS record pointing at a controller
            "sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\n"
            "sbatch: error: fetch_config: DNS SRV lookup failed\n"
            "sbatch: fatal: Could not establish a configuration source",
            "Could not establish a configuration source",
        ),
        (  # a partition the cluster lacks
            "sbatch: error: Batch job submission failed: Invalid partition name specified",
            "Batch job submission failed: Invalid partition name specified",
        ),
    ],
    ids=["unreachable-controller", "no-configuration", "bad-partition"],
)
def test_refused_submission_is_one_line(tmp_path, fake_slurm, monkeypatch, stderr, reason):
    """sbatch saying no (a real one-node cluster cannot be made to) is a SuiteError with its reason."""
    monkeypatch.setenv("FAKE_SLURM_REFUSE", stderr)
    spec = load_spec(tiny_spec(tmp_path, "method: [standard]\n"))
    with pytest.raises(SuiteError) as refused:
        run_sweep(spec, options(tmp_path), executor="slurm", slurm={"time": 5})
    message = str(refused.value)
    assert message == f"Slurm refused the job array: {reason} (check the cluster with `sinfo` and the " + (
        "--partition, --time and --slurm options)"
    )
    assert "\n" not in message and (fake_slurm / "submitted.sh").exists()  # it did reach sbatch
