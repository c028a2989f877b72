"""Sweep specs: a grid of run configurations from a YAML file, checked before anything starts.

A spec (``sweeps/*.yaml``)::

    name: table1                  # the W&B group and the folder <results>/sweeps/<name>/
    description: free text
    base:                         # RunConfig fields, method hyperparameters as flat keys
      dataset: cifar10
      epochs: 20
      lmbda: 10                   # applied to the runs whose method has a 'lmbda'
    grid:                         # lists; the runs are their cartesian product
      method: [fast_at, fast_bat]
      eps: [8, 16]
      seeds: 10                   # 'seeds': a list, or a count N meaning 0..N-1
    overrides:                    # per-cell changes, applied in order to the matching cells
      - when: {method: fast_bat, eps: 16}
        set: {ll_step: 2000}

Command-line ``--set key=value`` (YAML-parsed) replaces a grid axis when the key is one
(``--set eps=[8]``, ``--set seeds=2``) or when the value is a list; otherwise it pins the
key for every run, over the base and the overrides. A value ``best:<study spec>`` takes that
key from the best trial of a tuning study (``suite.experiments.tune.best_params``); for a study that ties
``ll_step`` to ``lmbda``, take both: ``--set lmbda=best:S --set ll_step=best:S``.

Everything is checked before anything starts; a bad key or value is reported with its line.
A grid holds at most ``max_runs`` cells (``DEFAULT_MAX_RUNS``; ``suite sweep --max-runs N`` raises
it): the product of the axes' lengths is checked before a single cell is made.

Launching the runs is :mod:`suite.experiments.launch`'s job.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..config.checks import check_number
from ..config.settings import canonical, method_hparams, parse_setting, split_settings
from ..errors import SuiteError
from .spec_file import SpecFile, read_spec

TOP_KEYS = ("name", "description", "base", "grid", "overrides")
DEFAULT_MAX_RUNS = 10_000  # grid cells; the shipped sweeps have at most a few hundred
FIELDS = {f.name: f for f in dataclasses.fields(RunConfig) if f.name != "hparams"}


@dataclass
class SweepSpec:
    """A loaded, validated sweep: ``configs()`` lists its resolved run configurations."""

    name: str
    path: Path
    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)  # key -> list of values
    overrides: list = field(default_factory=list)  # [(when dict, set dict)]
    pinned: dict = field(default_factory=dict)  # --set values that win over everything
    description: str = ""

    def cells(self) -> list[dict]:
        """The flat settings of every grid cell, overrides and pinned values applied."""
        cells = []
        for values in itertools.product(*self.grid.values()):
            cell = {**self.base, **dict(zip(self.grid, values))}
            for when, changes in self.overrides:
                if all(cell.get(k, _default(k)) == v for k, v in when.items()):
                    cell.update(changes)
            cell.update(self.pinned)
            cells.append(cell)
        return cells

    def configs(self) -> list[RunConfig]:
        """The resolved run configurations, in grid order, duplicates removed."""
        return self._expand()[0]

    def _expand(self) -> tuple[list[RunConfig], set[str]]:
        """The configurations and the hyperparameter keys that reached at least one run."""
        cells = self.cells()
        hparams_of = method_hparams({cell["method"] for cell in cells if isinstance(cell.get("method"), str)})
        configs, used = {}, set()
        for cell in cells:
            fields, hparams = split_settings(cell)
            own = hparams_of.get(fields.get("method", RunConfig.method), set())
            hparams = {k: v for k, v in hparams.items() if k in own}
            used |= set(hparams)
            try:
                config = RunConfig(**fields, hparams=hparams).resolved()
            except SuiteError as err:
                shown = ", ".join(f"{k}={v}" for k, v in cell.items() if k in self.grid)
                raise SuiteError(f"{self.path}: run ({shown}): {err}") from None
            configs.setdefault(config.run_id, config)
        return list(configs.values()), used


def _default(key):
    return FIELDS[key].default if key in FIELDS else None


def _resolve_best(key, value, results_dir=None):
    """``best:<study spec>`` -> that key's value in the tuning study's best trial."""
    if not (isinstance(value, str) and value.startswith("best:")):
        return value
    from .tune import best_params  # imported only when asked for

    study = value[len("best:") :].strip()
    params = best_params(study) if results_dir is None else best_params(study, results_dir=Path(results_dir))
    if key not in params:
        raise SuiteError(f"{key}=best:{study}: the study's best trial has no {key!r}; it has: {', '.join(params)}")
    return params[key]


def _axis(key, value, loc, check: SpecFile, max_runs: int) -> list:
    """A grid axis as a list; ``seeds: N`` means seeds 0..N-1 (N at least 1 and at most ``max_runs``)."""
    if key == "seeds" and isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            check.fail(loc, f"seeds must be a count of at least 1 (seeds 0..N-1) or a list of seeds, got {value}")
        if value > max_runs:
            check.fail(loc, f"seeds: {value:,} is more runs than the cap of {max_runs:,}; {MAX_RUNS_HINT}")
        return list(range(value))
    if isinstance(value, dict):
        check.fail(loc, f"grid axis {key!r} must be a list of values (or one value), got a mapping {value!r}")
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        check.fail(loc, f"grid axis {key!r} has no values")
    return values


MAX_RUNS_HINT = "raise it with --max-runs if you mean it, or make the grid smaller"


def check_grid_size(grid: dict, max_runs: int, check: SpecFile) -> int:
    """The number of grid cells, refused past ``max_runs`` before any cell is made."""
    cells = 1
    for values in grid.values():
        cells *= len(values)
    if cells > max_runs:
        axes = " x ".join(f"{len(values)} {key}" for key, values in grid.items())
        check.fail(
            ("grid",), f"the grid has {cells:,} runs ({axes}), more than the cap of {max_runs:,}; {MAX_RUNS_HINT}"
        )
    return cells


def load_spec(path, overrides: list[str] = (), *, results_dir=None, max_runs: int = DEFAULT_MAX_RUNS) -> SweepSpec:
    """Read, validate and expand a sweep spec; ``overrides`` are ``key=value`` strings (``--set``).

    ``results_dir``: where tuning studies named by ``best:<study spec>`` values live
    (default: ``results``). ``max_runs``: the most grid cells the spec may have.
    """
    path = Path(path)
    check_number("--max-runs", max_runs, integer=True, minimum=1)
    check = read_spec(path, "sweep spec")
    check.top_keys(TOP_KEYS, "sweep spec")
    check.find_methods(overrides)  # plug-ins' hyperparameters are keys of this spec
    data = check.data
    name = data.get("name") or path.stem
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        check.fail(("name",), f"name must be letters, digits, - and _, got {name!r}")

    def section(key, kind):
        value = data.get(key) or kind()
        if not isinstance(value, kind):
            check.fail((key,), f"{key} must be a {'mapping' if kind is dict else 'list'}")
        return value

    def entry(key, value, loc):
        value = _resolve_best(key, value, results_dir)
        check.value(key, value, loc)
        return value

    base = {}
    for key, value in section("base", dict).items():
        key = canonical(key, check.where(("base", key)))
        check.key(key, ("base", key))
        base[key] = entry(key, value, ("base", key))
    grid = {}
    for key, value in section("grid", dict).items():
        key = canonical(key, check.where(("grid", key)))
        check.key(key, ("grid", key), ("seeds",))
        axis = "seed" if key == "seeds" else key
        values = _axis(key, value, ("grid", key), check, max_runs)
        grid[axis] = [entry(axis, v, ("grid", key, i)) for i, v in enumerate(values)]
    rules = []
    for i, rule in enumerate(section("overrides", list)):
        if (
            not isinstance(rule, dict)
            or set(rule) - {"when", "set"}
            or not isinstance(rule.get("set"), dict)
            or not isinstance(rule.get("when", {}), dict)
        ):
            check.fail(("overrides", i), "an override is {when: {key: value, ...}, set: {key: value, ...}}")
        for part in ("when", "set"):
            rule[part] = {
                canonical(k, check.where(("overrides", i, part, k))): v for k, v in (rule.get(part) or {}).items()
            }
            for k in rule[part]:
                check.key(k, ("overrides", i, part, k))
        rules.append(
            tuple(
                {k: entry(k, v, ("overrides", i, part, k)) for k, v in rule[part].items()} for part in ("when", "set")
            )
        )

    pinned = {}
    for item in overrides:
        flag = f"--set {item}"
        key, value = parse_setting(item)
        check.key(key, flag, ("seeds",))
        if key == "seeds" or key in grid or isinstance(value, (list, tuple)):
            axis = "seed" if key == "seeds" else key
            grid[axis] = [entry(axis, v, flag) for v in _axis(key, value, flag, check, max_runs)]
            pinned.pop(axis, None)
        else:
            pinned[key] = entry(key, value, flag)

    check_grid_size(grid, max_runs, check)
    spec = SweepSpec(
        name=name,
        path=path,
        base=base,
        grid=grid,
        overrides=rules,
        pinned=pinned,
        description=str(data.get("description") or "").strip(),
    )
    _, used = spec._expand()  # every run must resolve before anything starts
    present = set().union(*spec.cells())
    places = (
        [(k, ("base", k)) for k in base]
        + [(k, ("grid", k)) for k in grid]
        + [(k, ("overrides", i, "set", k)) for i, (_, changes) in enumerate(rules) for k in changes]
        + [(k, f"--set {k}=...") for k in pinned]
    )
    for key, loc in places:  # a hyperparameter that reaches no run is a mistake
        if key not in FIELDS and key != "seed" and key in present and key not in used:
            check.fail(loc, f"{key!r} is a hyperparameter of no method it is applied to in this sweep")
    return spec
