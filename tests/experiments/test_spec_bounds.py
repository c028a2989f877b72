"""Hostile and mistyped specs: bounded before anything is expanded, one line each, exit 2, fast.

A spec is refused before it can exhaust the machine: a file too large, an alias bomb (YAML
aliases of aliases), a recursive alias, a grid or a seed count past the cap. A value of the
wrong type is named with its key, the type expected, and its file and line.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from suite import cli
from suite.errors import SuiteError
from suite.experiments.spec_file import MAX_SPEC_BYTES, MAX_SPEC_NODES
from suite.experiments.sweep import DEFAULT_MAX_RUNS, load_spec
from suite.experiments.tune import load_spec as load_study

# A refusal's bound, in this process (torch already loaded): each takes milliseconds on a quiet machine, and
# an unbounded spec took a minute and gigabytes; the margin absorbs a loaded CI machine.
SECOND = 10.0


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def refused(argv: list[str], capsys) -> tuple[str, float]:
    """Run the command line; it must exit 2 with one line on stderr. Returns the line and the seconds."""
    start = time.perf_counter()
    code = cli.main(argv)
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip(), seconds


def alias_bomb(levels: int = 9, width: int = 10) -> str:
    """``levels`` nested levels of ``width`` aliases each (width**levels values), under unknown keys."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nbomb: *l{levels - 1}\n"


@pytest.mark.parametrize("command", ["sweep", "tune"])
def test_an_alias_bomb_is_refused_at_once(tmp_path, capsys, command):
    spec = write(tmp_path, alias_bomb())  # level 5 (line 5) is the first past the bound
    line, seconds = refused([command, str(spec), "--dry-run" if command == "sweep" else "--show"], capsys)
    assert f"{spec} line 5: the spec holds more than {MAX_SPEC_NODES:,} YAML values" in line
    assert seconds < SECOND


def test_a_small_alias_is_still_read(tmp_path):
    spec = write(
        tmp_path,
        """
        base: &b {epochs: 1, train_points: 256}
        grid: {method: [fast_at, fgsm], epochs: [1]}
        overrides:
          - when: {method: fgsm}
            set: *b
        """,
    )
    assert {c.train_points for c in load_spec(spec).configs()} == {256}


def test_a_recursive_alias_and_a_deep_nesting_are_refused(tmp_path, capsys):
    line, _ = refused(["sweep", str(write(tmp_path, "grid: &g {eps: [8, *g]}\n")), "--dry-run"], capsys)
    assert "line 1: an alias refers to the value that holds it" in line
    line, _ = refused(["sweep", str(write(tmp_path, "grid: " + "[" * 200 + "]" * 200 + "\n")), "--dry-run"], capsys)
    assert "nested more than" in line


def test_a_file_too_large_is_refused_without_reading_it_whole(tmp_path, capsys):
    spec = write(tmp_path, "description: " + "x" * (MAX_SPEC_BYTES + 10) + "\n")
    line, seconds = refused(["sweep", str(spec), "--dry-run"], capsys)
    assert f"{spec} is larger than {MAX_SPEC_BYTES // 1024} KiB" in line and seconds < SECOND
    line, seconds = refused(["sweep", "/dev/zero", "--dry-run"], capsys)  # endless: read only to the bound
    assert "/dev/zero is larger than" in line and seconds < SECOND
    many = write(tmp_path, "grid: {eps: [" + ", ".join(["8"] * (MAX_SPEC_NODES + 1)) + "]}\n", "many.yaml")
    line, seconds = refused(["sweep", str(many), "--dry-run"], capsys)
    assert "holds more than" in line and seconds < SECOND


def test_a_grid_past_the_cap_is_refused_with_its_count(tmp_path, capsys):
    axes = ["eps", "lr", "momentum", "weight_decay", "epochs", "batch_size", "seed", "pgd_steps", "val_pgd_steps"]
    values = {key: [round(0.05 * (i + 1), 2) for i in range(10)] for key in ("lr", "momentum", "weight_decay")}
    grid = "\n".join(f"  {key}: {values.get(key, list(range(1, 11)))}" for key in axes)
    spec = write(tmp_path, f"grid:\n{grid}\n")
    line, seconds = refused(["sweep", str(spec), "--dry-run"], capsys)
    assert f"{spec} line 1: the grid has 1,000,000,000 runs (10 eps x 10 lr x" in line
    assert f"more than the cap of {DEFAULT_MAX_RUNS:,}" in line and "--max-runs" in line
    assert seconds < SECOND


def test_max_runs_raises_the_cap(tmp_path, capsys):
    spec = write(tmp_path, "base: {epochs: 1}\ngrid: {method: [fast_at, fgsm], eps: [4, 8]}\n")
    line, _ = refused(["sweep", str(spec), "--dry-run", "--max-runs", "3"], capsys)
    assert "the grid has 4 runs (2 method x 2 eps), more than the cap of 3" in line
    assert len(load_spec(spec, max_runs=4).configs()) == 4
    assert cli.main(["sweep", str(spec), "--dry-run", "--max-runs", "4", "--results-dir", str(tmp_path / "r")]) == 0
    assert "4 runs" in capsys.readouterr().out
    line, _ = refused(["sweep", str(spec), "--dry-run", "--max-runs", "0"], capsys)
    assert "--max-runs must be at least 1" in line


@pytest.mark.parametrize("where", ["spec", "set"])
def test_a_huge_seed_count_is_refused_at_once(tmp_path, capsys, where):
    spec = write(tmp_path, "grid: {seeds: 1000000000}\n" if where == "spec" else "grid: {seeds: 2}\n")
    extra = ["--set", "seeds=1000000000"] if where == "set" else []
    line, seconds = refused(["sweep", str(spec), "--dry-run", *extra], capsys)
    assert "seeds: 1,000,000,000 is more runs than the cap of 10,000" in line and seconds < SECOND


@pytest.mark.parametrize("count", [-3, 0])
def test_a_seed_count_below_one_is_refused(tmp_path, capsys, count):
    line, _ = refused(["sweep", str(write(tmp_path, f"grid: {{seeds: {count}}}\n")), "--dry-run"], capsys)
    assert f"line 1: seeds must be a count of at least 1 (seeds 0..N-1) or a list of seeds, got {count}" in line


@pytest.mark.parametrize(
    "text, where, message",
    [
        (
            "grid: {method: {a: 1}}\n",
            "line 1",
            "grid axis 'method' must be a list of values (or one value), got a mapping",
        ),
        ("grid:\n  method:\n    - [fast_at]\n", "line 3", "method must be a name (a string), got a list ['fast_at']"),
        ("base: {method: [fast_at]}\n", "line 1", "method must be a name (a string), got a list ['fast_at']; to run"),
        (
            "grid: {method: [fast_at]}\noverrides:\n  - when: {method: [1]}\n    set: {epochs: 2}\n",
            "line 3",
            "method must be a name (a string), got a list [1]",
        ),
        ("base:\n  epochs: {a: 1}\n", "line 2", "epochs must be int, got a mapping {'a': 1}"),
        ("grid: {eps: [[8]]}\n", "line 1", "eps must be float, got a list [8]"),
        ("base: {eps: 8/255}\n", "line 1", "eps is in units of 1/255: write eps: 8 for 8/255"),
    ],
)
def test_a_value_of_the_wrong_type_names_its_key_type_and_line(tmp_path, capsys, text, where, message):
    spec = write(tmp_path, text)
    line, _ = refused(["sweep", str(spec), "--dry-run"], capsys)
    assert line == f"error: {spec} {where}: {message}" or line.startswith(f"error: {spec} {where}: {message}"), line


def test_an_eps_below_one_in_a_spec_warns_that_eps_is_in_255ths(tmp_path, capsys):
    spec = write(tmp_path, "base: {eps: 0.031, method: fast_at}\n")
    load_spec(spec)
    err = capsys.readouterr().err
    assert f"{spec} line 1: eps 0.031 is in units of 1/255" in err and "write 7.9" in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("- name: x\n- base: {}\n", "a study spec is a mapping with keys name"),
        ("search: [1, 2]\n", "line 1: search must be a mapping, got a list [1, 2]"),
        ("heartbeat: [1]\n", "line 1: heartbeat must be a mapping, got a list [1]"),
        ("sampler: {name: [tpe]}\n", "line 1: sampler must be a name or a mapping with a 'name' (a string)"),
        ("objective: {a: 1}\n", "line 1: objective must be a metric name or a list of them"),
        ("search:\n  lmbda: [a, 2]\n", "line 2: search.lmbda must be [low, high] (numbers, log-uniform)"),
        ("enqueue: [1]\n", "line 1: enqueue must be a list of {hyperparameter: value} mappings"),
        ("base: {method: [fast_bat]}\n", "line 1: method must be a name (a string), got a list ['fast_bat']"),
    ],
)
def test_a_study_spec_of_the_wrong_shape_is_one_line(tmp_path, capsys, text, message):
    spec = write(tmp_path, text)
    with pytest.raises(SuiteError, match=None) as err:
        load_study(spec)
    assert message in str(err.value) and "\n" not in str(err.value)
    line, _ = refused(["tune", str(spec), "--show", "--results-dir", str(tmp_path / "r")], capsys)
    assert message in line
    assert not (tmp_path / "r").exists()
