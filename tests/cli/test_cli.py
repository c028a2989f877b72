"""The command line as its users meet it: help and defaults, one vocabulary, filters that say
what is wrong, hints that run, data fetched once, numbers without float noise, progress."""

from __future__ import annotations

import argparse
import shlex
import threading
import time
from pathlib import Path

import pytest

import suite.data
from suite.cli import build_parser, main
from suite.config.numbers import tidy
from suite.data.prefetch import ensure_data
from suite.errors import SuiteError

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


def all_parsers(parser=None, name="suite"):
    parser = parser or build_parser()
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from all_parsers(child, f"{name} {sub}")


def test_every_flag_has_help_and_a_visible_default():
    for name, parser in all_parsers():
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name} {'/'.join(action.option_strings) or action.dest} has no help text"
            if action.default not in (None, False, [], argparse.SUPPRESS) and action.option_strings:
                text = parser.formatter_class("x")._get_help_string(action)
                assert "default" in text, f"{name} {action.option_strings[0]} hides its default"
    run_help = dict(all_parsers())["suite run"].format_help()
    assert "(default: results)" in " ".join(run_help.split())


def test_one_vocabulary_old_names_still_work_with_a_warning(capsys, tmp_path):
    args = build_parser().parse_args(
        ["run", "--method", "pgd", "--attack-steps", "2", "--attack-alpha", "4", "--ga-coef", "0.1"]
    )
    assert (args.steps, args.alpha, args.coef) == (2, 4.0, 0.1)
    err = capsys.readouterr().err
    assert "--attack-steps is the old name of --steps" in err and "--ga-coef is the old name of --coef" in err
    new = build_parser().parse_args(["run", "--method", "pgd", "--steps", "2", "--alpha", "4"])
    from suite.commands.run import config_from_args

    assert config_from_args(new).hparams == {"steps": 2, "alpha": 4.0}
    assert config_from_args(args).hparams == {"steps": 2, "alpha": 4.0, "coef": 0.1}

    from suite.experiments.sweep import load_spec

    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nbase: {dataset: fashion_mnist, arch: small_cnn, method: pgd, attack_steps: 2}\ngrid: {eps: [8]}\n"
    )
    old = load_spec(spec, ["attack_alpha=4"]).configs()[0]
    assert (old.hparams["steps"], old.hparams["alpha"]) == (2, 4.0)
    err = capsys.readouterr().err
    assert "'attack_steps' is the old name of 'steps'" in err and "'attack_alpha' is the old name of 'alpha'" in err
    spec.write_text(
        "name: s\nbase: {dataset: fashion_mnist, arch: small_cnn, method: pgd, steps: 2}\ngrid: {eps: [8]}\n"
    )
    assert load_spec(spec, ["alpha=4"]).configs()[0].run_id == old.run_id


def test_bench_loader_workers_has_its_own_name(capsys):
    assert build_parser().parse_args(["bench", "--loader-workers", "3"]).workers == 3
    assert build_parser().parse_args(["bench", "--workers", "3"]).workers == 3
    assert "--workers is the old name of --loader-workers" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--method", "fast_bta", "unknown method 'fast_bta' (did you mean 'fast_bat'?)"),
        ("--dataset", "cifar", "unknown dataset 'cifar'"),
        ("--arch", "preact", "unknown arch 'preact'"),
        ("--status", "done", "unknown status 'done'"),
    ],
)
def test_runs_refuses_unknown_filter_values(flag, value, message, tmp_path, capsys):
    assert main(["runs", "--results-dir", str(tmp_path), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert main(["runs", "--results-dir", str(tmp_path), "--method", "fast_bat"]) == 0
    assert "no runs" in capsys.readouterr().out


def test_tune_hint_is_a_command_that_parses_to_the_same_study():
    from suite.commands.tune import show_command

    args = build_parser().parse_args(
        ["tune", "sweeps/lambda_smoke.yaml", "--set", "name=my study", "--set", "epochs=3", "--results-dir", "out"]
    )
    command = show_command(args)
    again = build_parser().parse_args(shlex.split(command)[1:])
    assert (again.spec, again.set, again.results_dir, again.show) == (args.spec, args.set, args.results_dir, True)


# -- data ------------------------------------------------------------------------------------


def test_data_download_of_tiny_imagenet_points_to_prepare(tmp_path, capsys):
    assert main(["data", "download", "tiny_imagenet", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "suite data prepare-tiny-imagenet" in err


def test_data_download_leaves_fashion_mnist_in_the_data_folder(tmp_path, capsys, monkeypatch):
    import suite.data.torchvision_sets as sets
    from suite.data import load_splits

    if not sets.SYSTEM_DIR.is_dir():
        pytest.skip(f"Debian's Fashion-MNIST ({sets.SYSTEM_DIR}) is not installed")
    data = tmp_path / "data"
    assert main(["data", "download", "fashion_mnist", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"copied 4 files (29 MiB) from {sets.SYSTEM_DIR} into {data / 'fashion-mnist'}" in out
    for source in sorted(sets.SYSTEM_DIR.iterdir()):
        assert (data / "fashion-mnist" / source.name).read_bytes() == source.read_bytes()
    monkeypatch.setattr(sets, "SYSTEM_DIR", tmp_path / "no-debian-package")  # a compute node without it
    assert len(load_splits("fashion_mnist", data, download=False).test_x) == 10_000
    assert main(["data", "download", "fashion_mnist", "--data-dir", str(data)]) == 0
    assert f"fashion_mnist: already in {data}; nothing to do" in capsys.readouterr().out


class FakeDownloads:
    """``load_splits`` for a data set that is missing until a (slow) download writes it."""

    def __init__(self, folder: Path, online: bool = True):
        self.folder, self.online, self.downloads = folder, online, 0

    def __call__(self, name, data_dir, download=True, **kwargs):
        marker = Path(data_dir) / f"{name}.done"
        if marker.exists():
            return "splits"
        if not download:
            raise SuiteError(f"{name} not found in {data_dir} (download disabled)")
        if not self.online:
            raise SuiteError(f"{name} not found in {data_dir} and could not be downloaded (offline?)")
        self.downloads += 1
        time.sleep(0.3)  # long enough for the others to arrive meanwhile
        marker.write_text("x")
        return "splits"


def test_concurrent_launches_download_once(tmp_path, monkeypatch):
    fake = FakeDownloads(tmp_path)
    monkeypatch.setattr(suite.data, "load_splits", fake)
    errors = []

    def launch():
        try:
            ensure_data("cifar10", tmp_path, download=True)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=launch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and fake.downloads == 1 and (tmp_path / ".cifar10.lock").exists()


def test_missing_data_offline_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(suite.data, "load_splits", FakeDownloads(tmp_path, online=False))
    with pytest.raises(SuiteError) as err:
        ensure_data("cifar10", tmp_path, download=True)
    assert "\n" not in str(err.value) and "suite data download cifar10 --data-dir DIR" in str(err.value)
    with pytest.raises(SuiteError, match=f"fetch it first with: suite data download cifar10 --data-dir {tmp_path}"):
        ensure_data("cifar10", tmp_path, download=False)


def test_sweep_checks_the_data_before_submitting(tmp_path, monkeypatch):
    from suite.config import RunOptions
    from suite.experiments.launch import run_sweep
    from suite.experiments.sweep import load_spec

    monkeypatch.setattr(suite.data, "load_splits", FakeDownloads(tmp_path, online=False))
    submitted = []
    monkeypatch.setattr("submitit.LocalExecutor.submit", lambda *a, **k: submitted.append(a))
    spec = load_spec(SWEEPS / "table1.yaml", ["seeds=1", "eps=[8]"])
    options = RunOptions(
        results_dir=tmp_path / "results", data_dir=tmp_path / "data", device="cpu", wandb="disabled", progress=False
    )
    with pytest.raises(SuiteError, match="suite data download cifar10"):
        run_sweep(spec, options)
    assert not submitted and not (tmp_path / "results" / "runs").exists()


# -- records for people ------------------------------------------------------------------------


def test_tidy_rounds_float_noise_only():
    assert tidy(28.000000000000004) == 28.0 and tidy(0.1 + 0.2) == 0.3
    assert tidy({"sa": 45.23, "loss": [0.123456789], "n": 3, "s": "x", "none": None}) == {
        "sa": 45.23,
        "loss": [0.123457],
        "n": 3,
        "s": "x",
        "none": None,
    }


def test_records_and_csv_carry_no_float_noise(finished_tiny_run, capsys):
    from suite.store.atomic import read_jsonl
    from suite.store.run_dir import RunDir

    config, results, summary = finished_tiny_run
    run = RunDir(results, summary["run_id"])

    def floats(value):
        if isinstance(value, float):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from floats(item)
        elif isinstance(value, list):
            for item in value:
                yield from floats(item)

    written = list(floats(read_jsonl(run.metrics))) + list(floats(run.read_summary()))
    assert written and all(value == tidy(value) for value in written)
    assert run.read_summary()["best"] == summary["best"]  # what execute returned is what was written
    assert main(["runs", "--results-dir", str(results), "--csv"]) == 0
    cells = [cell for line in capsys.readouterr().out.splitlines()[1:] for cell in line.split(",")]
    numbers = [float(cell) for cell in cells if cell.replace(".", "", 1).replace("e-", "", 1).isdigit()]
    assert numbers and all(n == tidy(n) for n in numbers)


def test_final_evaluation_shows_its_progress(tiny_config, tiny_options, capsys):
    import dataclasses

    from suite.engine.trainer import execute

    execute(dataclasses.replace(tiny_config, epochs=1), dataclasses.replace(tiny_options, progress=True))
    out = capsys.readouterr().out
    assert "evaluating last-epoch model: clean and PGD-5-1 on 128 test points ..." in out
    assert "best model = last-epoch model (epoch 1)" in out


# -- input traps -------------------------------------------------------------------------------


def argparse_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("command", ["run", "bench"])
def test_an_eps_below_one_is_refused_with_the_255_hint(capsys, command):
    line = argparse_error([command, "--eps", "0.031"], capsys)
    assert "argument --eps: 0.031 is in units of 1/255 (--eps 8 means 8/255)" in line
    assert "write --eps 7.91" in line and "--eps 0.031/255" in line


def test_an_eps_written_over_255_is_understood(capsys):
    from suite.commands.run import config_from_args

    parse = build_parser().parse_args
    assert parse(["run", "--eps", "8/255"]).eps == 8.0 and parse(["run", "--eps", "0.5/255"]).eps == 0.5
    same = [config_from_args(parse(["run", "--eps", eps])).resolved().run_id for eps in ("8/255", "8")]
    assert same[0] == same[1]
    assert "write the budget in units of 1/255" in argparse_error(["run", "--eps", "2/3"], capsys)
    assert "'abc' is not a budget" in argparse_error(["run", "--eps", "abc"], capsys)


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["sweeep"], "unknown command 'sweeep' (did you mean 'sweep'?)"),
        (["data", "download", "fashoin_mnist"], "unknown dataset 'fashoin_mnist' (did you mean 'fashion_mnist'?)"),
        (["data", "downlod"], "unknown action 'downlod' (did you mean 'download'?)"),
        (["reproduce", "smok"], "unknown preset 'smok' (did you mean 'smoke'?)"),
        (["bench", "--only", "evl"], "unknown section 'evl' (did you mean 'eval'?)"),
        (["run", "--lr-schedule", "cyclc"], "unknown lr schedule 'cyclc' (did you mean 'cyclic'?)"),
        (["sweep", "s.yaml", "--executor", "slrum"], "unknown executor 'slrum' (did you mean 'slurm'?)"),
    ],
)
def test_a_choice_that_is_not_one_suggests_the_closest(capsys, argv, hint):
    line = argparse_error(argv, capsys)
    assert hint in line and "; choose one of: " in line


def test_unknown_names_in_a_run_and_a_study_spec_suggest_the_closest(tmp_path, capsys):
    from suite.experiments.tune import load_spec

    assert main(["run", "--method", "fastbat", "--results-dir", str(tmp_path / "r")]) == 2
    assert "unknown method 'fastbat' (did you mean 'fast_bat'?)" in capsys.readouterr().err
    spec = tmp_path / "study.yaml"
    spec.write_text("objective: val_robust\n")
    with pytest.raises(SuiteError, match=r"unknown objective 'val_robust' \(did you mean 'val_robust_acc'\?\)"):
        load_spec(spec)
