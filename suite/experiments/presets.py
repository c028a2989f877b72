"""The end-to-end presets of ``suite reproduce``: which sweeps and study each runs, and what
that costs.

The cost estimate counts training only, in *fast_at-epoch equivalents*: one epoch of Fast-AT
on the same data and architecture is 1. Per-epoch factors count forward-backward passes per
batch against Fast-AT's 2: ``standard`` 0.5, ``fgsm`` and ``n_fgsm`` 1, ``pgd`` with k steps
(k + 1) / 2; ``fast_at_ga`` and ``fast_bat`` the ratio of their time per epoch to Fast-AT's in
the paper's Table 1. The per-epoch validation and the final PGD-50-10 and AutoAttack
evaluation come on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import SuiteError, unknown_name

COST_UNIT = "fast_at-epoch equivalents"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    sweeps: tuple[str, ...] = ()  # sweep spec file names under sweeps/
    study: str | None = None  # study spec file name under sweeps/


PRESETS = {
    p.name: p
    for p in [
        Preset(
            "smoke",
            "every method at 3 eps on a Fashion-MNIST subset, catastrophic overfitting on Fashion-MNIST "
            "with injected features (3 seeds), and a short λ study (CPU minutes)",
            ("smoke.yaml", "smoke_co.yaml"),
            "lambda_smoke.yaml",
        ),
        Preset("table1", "the paper's Table 1: CIFAR-10, PreActResNet-18, eps 8 and 16, 10 seeds", ("table1.yaml",)),
        Preset(
            "co",
            "robustness against training eps 2..16 on CIFAR-10 (with FGSM and N-FGSM): catastrophic overfitting",
            ("co_eps.yaml",),
        ),
        Preset("archs", "WRN-16-8, ResNet-18, ResNet-50 on CIFAR-10", ("archs.yaml",)),
        Preset("datasets", "CIFAR-100, SVHN, Tiny-ImageNet with PreActResNet-18", ("datasets.yaml",)),
        Preset("lambda", "Fast-BAT's λ study on CIFAR-10", (), "lambda_cifar10.yaml"),
    ]
}
DEFAULT = "smoke"


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise unknown_name("preset", name, PRESETS)
    return PRESETS[name]


def spec_path(filename: str, sweeps_dir: Path | None = None) -> Path:
    """A spec file in ``sweeps_dir``, else ``./sweeps``, else the ``sweeps/`` of the suite's checkout."""
    folders = [Path(sweeps_dir)] if sweeps_dir else [Path("sweeps"), Path(__file__).resolve().parent.parent / "sweeps"]
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
    raise SuiteError(
        f"spec {filename} not found in {' or '.join(str(f) for f in folders)}; "
        f"run from the suite's checkout or pass --sweeps-dir"
    )


def epoch_cost_factors() -> dict[str, float]:
    """Per-epoch training cost of each method relative to fast_at (see the module docstring)."""
    from ..report.tables import paper_table

    seconds = paper_table().groupby("method")["time_per_epoch_s"].first()
    factors = {"standard": 0.5, "fast_at": 1.0, "fgsm": 1.0, "n_fgsm": 1.0}
    factors.update({m: float(seconds[m] / seconds["fast_at"]) for m in ("fast_at_ga", "fast_bat") if m in seconds})
    return factors


def run_cost(config, factors: dict[str, float] | None = None) -> float:
    """One run's training cost in :data:`COST_UNIT`."""
    factors = factors or epoch_cost_factors()
    if config.method == "pgd":
        factor = (config.hparams.get("steps", 10) + 1) / 2
    elif config.method in factors:
        factor = factors[config.method]
    else:
        raise SuiteError(f"no cost factor for method {config.method!r}")
    return config.epochs * factor


@dataclass
class Plan:
    """What a preset will run: its sweeps' configurations and its study's trials."""

    preset: Preset
    sweep_specs: list  # suite.experiments.sweep.SweepSpec
    study_spec: object | None  # suite.experiments.tune.StudySpec
    configs: list  # every sweep run configuration

    @property
    def trial_config(self):
        return self.study_spec.run_config({}) if self.study_spec else None

    def epochs(self) -> list[int]:
        found = {c.epochs for c in self.configs} | ({self.trial_config.epochs} if self.study_spec else set())
        return sorted(found)

    def cost(self) -> float:
        factors = epoch_cost_factors()
        total = sum(run_cost(c, factors) for c in self.configs)
        if self.study_spec:
            total += self.study_spec.n_trials * self.trial_config.epochs * factors.get(self.trial_config.method, 1.0)
        return total


def study_overrides(overrides, extra=()) -> list[str]:
    """The sweep ``--set`` items that also apply to a study: plain run settings (``epochs=2``,
    ``train_points=512``), not grid axes (method, eps, seeds), lists or method hyperparameters;
    then ``extra`` (study-only settings such as ``n_trials=3``)."""
    from ..config.settings import FIELDS, parse_setting

    def plain(item):
        key, value = parse_setting(item)
        return key in FIELDS - {"method", "eps", "seed"} and not isinstance(value, list)

    return [item for item in overrides if plain(item)] + list(extra)


def make_plan(
    preset: Preset, overrides=(), study_set=(), sweeps_dir: Path | None = None, *, max_runs: int | None = None
) -> Plan:
    """Load (and so validate) the preset's specs with the overrides; ``max_runs`` caps each sweep's grid."""
    from .sweep import DEFAULT_MAX_RUNS, load_spec

    cap = max_runs or DEFAULT_MAX_RUNS
    specs = [load_spec(spec_path(name, sweeps_dir), list(overrides), max_runs=cap) for name in preset.sweeps]
    study = None
    if preset.study:
        from .tune import load_spec as load_study

        study = load_study(spec_path(preset.study, sweeps_dir), study_overrides(overrides, study_set))
    return Plan(preset, specs, study, [c for spec in specs for c in spec.configs()])
