"""Study specs: which runs a study's trials are, what it searches and how it samples and prunes.

A study spec (YAML, see ``sweeps/lambda_*.yaml``) names the study, the base run configuration,
the search space, the objective, the sampler, the pruner and the number of trials. A spec file
is read with the line of each key (:mod:`suite.experiments.spec_file`), so a bad key is
reported as sweeps report it.

What is searched is any of the method's hyperparameters. Without a ``search`` the method's own
``SEARCH`` is, and ``coupled: true`` derives the hyperparameters its ``COUPLED`` declares from the
searched ones (Fast-BAT: ``ll_step`` = 255/``lmbda``) instead of searching or fixing them; both
live in the method's file (:mod:`suite.methods.metadata`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from ...config import RunConfig
from ...config.checks import check_number
from ...config.settings import canonical, parse_setting, split_settings
from ...errors import SuiteError, unknown_name
from ...methods import get_method
from ...methods import metadata as meta
from ..spec_file import SpecFile, read_spec, shown_value

SPEC_KEYS = (
    "name",
    "description",
    "base",
    "search",
    "objective",
    "sampler",
    "pruner",
    "n_trials",
    "heartbeat",
    "enqueue",
)
# objective names -> where they come from: validation metrics of the early-stopped epoch, or
# the run summary's test metrics (tuning on the test set inflates them; prefer validation)
METRICS = ("val_robust_acc", "val_clean_acc", "sa", "ra_pgd", "ra_aa", "last_sa", "last_ra_pgd")
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "none": optuna.pruners.NopPruner,
}
DEFAULT_SAMPLER = {"name": "tpe", "seed": 0}
DEFAULT_PRUNER = {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 2}  # steps are epochs
HEARTBEAT = {"interval": 60, "grace_period": 180, "max_retry": 2}  # seconds, seconds, retries


@dataclass
class StudySpec:
    """A parsed, validated study spec; ``base`` holds RunConfig fields and flat hyperparameters."""

    name: str
    base: dict
    search: dict  # hyperparameter -> {"low", "high", "log"}
    objectives: list[str]
    coupled: bool = False  # derive the method's COUPLED hyperparameters from the searched ones
    sampler: dict = field(default_factory=lambda: dict(DEFAULT_SAMPLER))
    pruner: dict = field(default_factory=lambda: dict(DEFAULT_PRUNER))
    n_trials: int = 20
    heartbeat: dict = field(default_factory=lambda: dict(HEARTBEAT))
    enqueue: list = field(default_factory=list)

    @property
    def directions(self) -> list[str]:
        return ["maximize"] * len(self.objectives)

    def fingerprint(self) -> dict:
        """What fixes the meaning of the study's trials: changing any of it needs a new study."""
        return json.loads(
            json.dumps(
                {"base": self.base, "search": self.search, "coupled": self.coupled, "objective": self.objectives},
                sort_keys=True,
            )
        )

    def run_config(self, hparams: dict) -> RunConfig:
        """The base configuration with the trial's hyperparameters; not yet resolved."""
        fields, base_hparams = split_settings(self.base)
        return RunConfig.from_dict({**fields, "hparams": {**base_hparams, **hparams}})

    @property
    def method(self) -> str:
        return str(self.base.get("method", RunConfig.method))

    def couplings(self) -> dict:
        """``{target: (source, function, formula)}``: what ``coupled: true`` derives here (the method's
        ``COUPLED`` whose source is searched); empty when the spec does not couple."""
        if not self.coupled:
            return {}
        declared = meta.couplings(get_method(self.method))
        return {target: entry for target, entry in declared.items() if entry[0] in self.search}

    def derived(self, params: dict) -> dict:
        """The searched ``params`` with the coupled hyperparameters derived from them."""
        out = dict(params)
        for target, (source, function, _) in self.couplings().items():
            out[target] = float(function(params[source]))
        return out

    def suggest(self, trial: optuna.Trial) -> dict:
        """Draw the trial's hyperparameters (coupled ones are derived, not searched)."""
        params = {name: trial.suggest_float(name, r["low"], r["high"], log=r["log"]) for name, r in self.search.items()}
        return self.derived(params)


def apply_overrides(raw: dict, overrides: list[str] | dict | None) -> dict:
    """Apply ``key=value`` settings (values YAML-parsed) to a raw spec dict.

    ``a.b=v`` sets a nested key (``search.lmbda=[0.1, 10]``, ``pruner.name=none``); a plain
    key sets a top-level spec key (``n_trials``, ``name``), a searched range (``lmbda=[0.1, 10]``,
    ``coupled=true``) or else a base setting (``epochs=5``).
    """
    raw = json.loads(json.dumps(raw, default=str))  # a YAML date becomes text, refused where it lands
    if isinstance(overrides, list):
        overrides = dict(parse_setting(item) for item in overrides)
    searched = set(raw.get("search") or default_search(raw)) | {"coupled"}
    for key, value in (overrides or {}).items():
        if "." in key:
            path = key.split(".")
        else:
            path = [key] if key in SPEC_KEYS else ["search", key] if key in searched else ["base", key]
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {} if node.get(part) is None else {"name": node[part]}
            node = node[part]
        node[path[-1]] = value
    return raw


def default_search(raw: dict) -> dict:
    """The search of a spec that gives none: its method's ``SEARCH`` (empty where it declares none,
    or where the method does not resolve: that is refused where the method is checked)."""
    base = raw.get("base") if isinstance(raw.get("base"), dict) else {}
    try:
        return meta.search(get_method(str(base.get("method", RunConfig.method))))
    except SuiteError:
        return {}


def _named(value, default: dict, what: str) -> dict:
    """``"median"`` / ``None`` / ``{"name": ..., **kwargs}`` -> ``{"name": ..., **kwargs}``."""
    if value is None:
        return {"name": "none"} if what == "pruner" else dict(default)
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise SuiteError(f"{what} must be a name or a mapping with a 'name' key, got {value!r}")
    return dict(value)


def load_spec(spec: str | Path | dict | StudySpec, overrides: list[str] | dict | None = None) -> StudySpec:
    """Read and validate a study spec (a YAML path or a dict); raises SuiteError on bad input."""
    if isinstance(spec, StudySpec):
        if overrides:
            raise SuiteError("overrides apply to a spec file or dict, not to a loaded StudySpec")
        return spec
    if isinstance(spec, dict):
        check = SpecFile("study spec", spec)
    else:
        path = Path(spec)
        if not path.is_file():
            raise SuiteError(f"study spec {path} not found")
        check = read_spec(path, "study spec")
        check.data = {} if check.data is None else check.data
        check.top_keys(SPEC_KEYS, "study spec")
        spec = {"name": path.stem, **check.data}
        check.data = spec
    check.top_keys(SPEC_KEYS, "study spec")
    check_types(check)
    check.find_methods(overrides or ())  # the plug-ins' hyperparameters are keys of this spec
    for key in (spec.get("base") or {}) if isinstance(spec.get("base"), dict) else ():
        check.key(canonical(key, check.where(("base", key))), ("base", key))
        check.value(canonical(key), spec["base"][key], ("base", key))
    raw = apply_overrides(spec, overrides)
    check_types(SpecFile(check.path, raw, check.lines))  # what --set changed, too
    unknown = set(raw) - set(SPEC_KEYS)
    if unknown:
        raise SuiteError(f"unknown study spec key(s) {', '.join(sorted(unknown))}; valid: {', '.join(SPEC_KEYS)}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(raw.get("name", ""))):
        raise SuiteError(f"study name must be letters, digits, '_', '-' or '.', got {raw.get('name')!r}")
    base = {canonical(k, f"study {raw['name']} base"): v for k, v in (raw.get("base") or {}).items()}
    search_raw = dict(raw.get("search") or {})
    coupled = bool(search_raw.pop("coupled", False))
    search_raw = search_raw or default_search(raw)  # the method's SEARCH (coupled: true alone keeps it)
    search = {}
    for name, bounds in search_raw.items():
        if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
            bounds = {"low": bounds[0], "high": bounds[1], "log": True}
        if not isinstance(bounds, dict) or not {"low", "high"} <= set(bounds):
            raise SuiteError(f"search.{name} must be [low, high] (log-uniform) or {{low, high, log}}, got {bounds!r}")
        low, high, log = float(bounds["low"]), float(bounds["high"]), bool(bounds.get("log", True))
        if not low < high or (log and low <= 0):
            raise SuiteError(f"search.{name}: need low < high (and low > 0 on a log scale), got [{low:g}, {high:g}]")
        search[name] = {"low": low, "high": high, "log": log}
    if not search:
        method = base.get("method", RunConfig.method)
        raise SuiteError(
            f"search is empty and method {method!r} declares no SEARCH; give at least one hyperparameter "
            "range, search: {name: [low, high]}"
        )
    objectives = raw.get("objective", "val_robust_acc")
    objectives = [objectives] if isinstance(objectives, str) else list(objectives)
    bad = [o for o in objectives if o not in METRICS]
    if bad:
        raise unknown_name("objective", bad[0], METRICS)
    if not objectives or len(set(objectives)) < len(objectives):
        raise SuiteError(f"objective must be one or more distinct of {', '.join(METRICS)}; got {objectives}")
    pruner = (
        _named(raw["pruner"], DEFAULT_PRUNER, "pruner")
        if "pruner" in raw
        else (dict(DEFAULT_PRUNER) if len(objectives) == 1 else {"name": "none"})
    )
    sampler = _named(raw.get("sampler"), DEFAULT_SAMPLER, "sampler")
    for what, value, known in (("pruner", pruner, PRUNERS), ("sampler", sampler, SAMPLERS)):
        if value["name"] not in known:
            raise unknown_name(what, value["name"], known)
    if len(objectives) > 1 and pruner["name"] != "none":
        raise SuiteError("Optuna cannot prune multi-objective studies; set pruner: none")
    heartbeat = {**HEARTBEAT, **(raw.get("heartbeat") or {})}
    if set(heartbeat) != set(HEARTBEAT) or any(
        not isinstance(heartbeat[k], int) or heartbeat[k] < 1 for k in ("interval", "grace_period")
    ):
        raise SuiteError(
            f"heartbeat takes positive integer interval and grace_period (seconds) and max_retry; got {heartbeat}"
        )
    n_trials = raw.get("n_trials", 20)
    check_number("n_trials", n_trials, integer=True, minimum=1)
    result = StudySpec(
        name=str(raw["name"]),
        base=base,
        search=search,
        objectives=objectives,
        coupled=coupled,
        sampler=sampler,
        pruner=pruner,
        n_trials=n_trials,
        heartbeat=heartbeat,
        enqueue=list(raw.get("enqueue") or []),
    )
    _validate(result)
    return result


def check_types(check: SpecFile) -> None:
    """Each section of a study spec has the type it is read as; a wrong one is one line with its
    line number (not a TypeError from deep inside)."""
    data = check.data

    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for key in ("base", "search", "heartbeat"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            check.fail((key,), f"{key} must be a mapping, got {shown_value(data[key])}")
    for key in ("sampler", "pruner"):
        value = data.get(key)
        if value is not None and not isinstance(value.get("name") if isinstance(value, dict) else value, str):
            check.fail((key,), f"{key} must be a name or a mapping with a 'name' (a string), got {shown_value(value)}")
    objective = data.get("objective")
    if objective is not None and not (
        isinstance(objective, str) or (isinstance(objective, list) and all(isinstance(o, str) for o in objective))
    ):
        check.fail(("objective",), f"objective must be a metric name or a list of them, got {shown_value(objective)}")
    enqueue = data.get("enqueue")
    if enqueue is not None and not (isinstance(enqueue, list) and all(isinstance(e, dict) for e in enqueue)):
        check.fail(
            ("enqueue",), f"enqueue must be a list of {{hyperparameter: value}} mappings, got {shown_value(enqueue)}"
        )
    for name, bounds in (data.get("search") or {}).items():
        if name == "coupled":
            continue
        ends = (
            bounds
            if isinstance(bounds, list)
            else [bounds.get("low"), bounds.get("high")]
            if isinstance(bounds, dict)
            else None
        )
        if not ends or len(ends) != 2 or not all(number(end) for end in ends):
            check.fail(
                ("search", name),
                f"search.{name} must be [low, high] (numbers, log-uniform) or {{low, high, log}}, got {shown_value(bounds)}",
            )


def _check_coupled(spec: StudySpec) -> None:
    """``coupled: true`` needs a coupling of the method whose source is searched, and its targets set nowhere."""
    declared = meta.couplings(get_method(spec.method))
    if not declared:
        raise SuiteError(f"coupled: true, but method {spec.method!r} declares no coupled hyperparameters (COUPLED)")
    applied = spec.couplings()
    for target, (source, _, formula) in (applied or declared).items():
        if source not in spec.search or target in spec.search or target in spec.base:
            raise SuiteError(f"coupled: true derives {target} = {formula}: search {source}, and set {target} nowhere")


def _validate(spec: StudySpec) -> None:
    """Check the base configuration, that searched names are the method's hyperparameters, and enqueue."""
    both = set(spec.search) & set(spec.base)
    if both:
        raise SuiteError(f"{', '.join(sorted(both))} is both set in base and searched; keep one")
    probe = {name: r["low"] for name, r in spec.search.items()}
    if spec.coupled:
        _check_coupled(spec)
    config = spec.run_config(spec.derived(probe)).resolved()  # names that are no hyperparameter of the method fail here
    if "ra_aa" in spec.objectives and not config.aa_points:
        raise SuiteError("objective ra_aa needs aa_points > 0 in base")
    for params in spec.enqueue:
        if not isinstance(params, dict) or set(params) - set(spec.search):
            raise SuiteError(
                f"enqueue entries must set only searched hyperparameters ({', '.join(spec.search)}), got {params!r}"
            )
