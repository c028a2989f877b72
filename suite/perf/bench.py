"""``suite bench``: what one training iteration, one data epoch and one evaluation cost here.

Every comparison is measured side by side in one run: the variants being compared are timed
in turn within each repetition (the order rotating from one repetition to the next), after
warm-up calls, and reported as medians and as ratios of medians (:mod:`.timing`). Five sections,
one module each:

* ``methods``: one training iteration (zero_grad, the method's step, optimizer step) of each
  training method, relative to standard training and to Fast-AT, with its peak memory; and
  the error of Fast-BAT's finite-difference correction against the exact one (``fd_rel_error``);
  and Fast-AT's and Fast-BAT's iteration in the contiguous layout against channels_last, the
  layout the suite trains in on every device (``contiguous_over_channels_last``);
* ``reference``: Fast-BAT and Fast-AT-GA as the suite implements them against the step-by-step
  transcriptions of the reference implementation in :mod:`suite.perf.reference_impl`;
* ``pipeline``: a training epoch on synthetic uint8 images through :class:`DeviceLoader` (batched
  crop + flip on the device) and through torch's DataLoader with torchvision's per-image
  transforms, with a standard training step per batch and without (data only);
* ``eval``: PGD-k-r with early exit against the full attack, on a small CNN trained here on
  Fashion-MNIST with Fast-AT, at an eps calibrated so that its robust accuracy is near 50%;
* ``precision``: each method's parameter gradient in the device's precisions against float64,
  beside its sampling noise (:mod:`suite.perf.precision`), at initialization or at a run's checkpoint.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import torch

from ..data import DATASETS
from .evaluation import bench_eval
from .iterations import bench_iterations
from .pipeline import bench_pipeline
from .precision import bench_precision, policy_lines
from .settings import SECTIONS, Settings, resolve
from .timing import device_name

__all__ = ["SECTIONS", "Settings", "check_targets", "format_report", "run_bench"]

# Targets:  (what, figure in the JSON as section/key, bound, "max" or "min")
TARGETS = [
    ("Fast-BAT (exact) / Fast-AT iteration", "methods/ratio_to_fast_at/fast_bat", 2.5, "max"),
    ("Fast-BAT finite-diff / Fast-AT iteration", "methods/ratio_to_fast_at/fast_bat_fd", 2.2, "max"),
    ("Fast-AT-GA / Fast-AT iteration", "methods/ratio_to_fast_at/fast_at_ga", 2.0, "max"),
    ("Fast-BAT: reference / suite time", "reference/saving/fast_bat", 1.15, "min"),
    ("DataLoader / DeviceLoader epoch (training)", "pipeline/dataloader_over_device_loader/train", 2.0, "min"),
    ("early-exit / full PGD cost", "eval/cost_ratio", 0.55, "max"),
]


# -- the whole bench ------------------------------------------------------------------------


def run_bench(settings: Settings) -> dict:
    """Measure the selected sections; returns every figure with the device and the settings."""
    s, device = resolve(settings)
    if s.threads is not None:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    result = {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(s).items()},
    }
    result["settings"]["sections"] = list(s.sections)
    if "methods" in s.sections or "reference" in s.sections:
        result.update(bench_iterations(s, device, "methods" in s.sections, "reference" in s.sections))
    if "pipeline" in s.sections:
        result["pipeline"] = bench_pipeline(s, device)
    if "eval" in s.sections:
        result["eval"] = bench_eval(s, device)
    if "precision" in s.sections:
        result["precision"] = bench_precision(s, device)
    result["targets"] = check_targets(result)
    return result


def check_targets(result: dict) -> list[dict]:
    """The issue's targets with the measured figure (those whose section was measured)."""
    checks = []
    for what, path, bound, kind in TARGETS:
        value = result
        for key in path.split("/"):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            met = value <= bound if kind == "max" else value >= bound
            checks.append({"what": what, "value": value, "bound": bound, "kind": kind, "met": bool(met)})
    return checks


# -- printing -------------------------------------------------------------------------------


def _mem(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:8.1f} MiB"


def op_count_line(m: dict) -> str:
    """The aten operations per step of Fast-AT and Fast-BAT (a proxy for GPU kernel launches)."""
    ops, ratio = m["op_counts"], m["ops_over_fast_at"]
    return (
        f"aten ops per training step (views excluded / all; a proxy for GPU kernel launches): "
        f"fast_at {ops['fast_at']['kernels']}/{ops['fast_at']['total']}, "
        f"fast_bat {ops['fast_bat']['kernels']}/{ops['fast_bat']['total']}, "
        f"Fast-BAT / Fast-AT {ratio['kernels']:.2f}/{ratio['total']:.2f}"
    )


def format_report(r: dict) -> str:
    """The human-readable table of :func:`run_bench`'s result."""
    s = r["settings"]
    info = DATASETS[s["dataset"]]
    lines = [
        f"suite bench on {r['device']} ({r['device_type']}), torch {r['torch']}",
        f"{s['arch']} on {info.in_channels}x{info.image_size}x{info.image_size} inputs, "
        f"{info.num_classes} classes, "
        f"batch {s['batch_size']}, eps {s['eps']:g}/255; medians of {s['reps']} interleaved rounds after "
        f"{s['warmup']} warm-up",
    ]
    if "methods" in r:
        m = r["methods"]
        lines += [
            "",
            f"{'training iteration':<22}{'ms':>10}{'x standard':>12}{'x fast_at':>11}  peak memory "
            f"({m['memory_measure']})",
        ]
        for n, t in m["seconds"].items():
            lines.append(
                f"{n:<22}{1e3 * t:10.1f}{m['ratio_to_standard'][n]:12.2f}{m['ratio_to_fast_at'][n]:11.2f}  "
                f"{_mem(m['peak_memory_bytes'][n])}"
            )
        lines.append(
            f"Fast-BAT finite-diff vs exact correction, relative error: {m['fd_rel_error']:.2e} (float32), "
            f"{m['fd_rel_error_float64']:.2e} (float64); of the whole gradient: "
            f"{m['fd_rel_error_total']:.2e} (float32), {m['fd_rel_error_total_float64']:.2e} (float64); "
            f"the exact correction is {m['correction_share']:.1e} of the whole gradient's norm"
        )
        lines.append(
            "contiguous layout / channels_last (the suite's), per iteration: "
            + ", ".join(f"{n} {ratio:.2f}" for n, ratio in m["contiguous_over_channels_last"].items())
        )
        lines.append(op_count_line(m))
    if "reference" in r:
        ref = r["reference"]
        lines += ["", f"{'suite vs reference':<22}{'suite ms':>10}{'reference ms':>14}{'saving (ref/suite)':>20}"]
        for n in ("fast_bat", "fast_at_ga"):
            lines.append(
                f"{n:<22}{1e3 * ref['seconds'][n]:10.1f}{1e3 * ref['seconds'][n + '_reference']:14.1f}"
                f"{ref['saving'][n]:20.2f}"
            )
    if "pipeline" in r:
        p = r["pipeline"]
        lines += [
            "",
            f"data pipeline, one epoch of {p['images']} images ({p['augmentation']})",
            f"{'loader':<22}{'train ms':>10}{'x device':>10}{'data ms':>10}{'x device':>10}",
        ]
        for n in p["seconds"]["train"]:
            lines.append(
                f"{n:<22}{1e3 * p['seconds']['train'][n]:10.1f}{p['all_ratios']['train'][n]:10.2f}"
                f"{1e3 * p['seconds']['data'][n]:10.1f}{p['all_ratios']['data'][n]:10.2f}"
            )
    if "eval" in r:
        e = r["eval"]
        if "skipped" in e:
            lines += ["", f"evaluation: skipped ({e['skipped']})"]
        else:
            lines += [
                "",
                f"{e['attack']} ({e['rounds']} rounds) on {e['points']} Fashion-MNIST test points, "
                f"eps {e['eps']:.2f}/255, "
                f"{e['model']}; clean accuracy {e['clean_acc']:.1f}%",
                f"{'attack':<22}{'ms':>10}{'robust acc %':>14}",
            ]
            for n in ("early_exit", "full"):
                lines.append(f"{n:<22}{1e3 * e['seconds'][n]:10.1f}{e['robust_acc'][n]:14.1f}")
            lines.append(
                f"cost ratio early-exit / full: {e['cost_ratio']:.2f} in time, {e['work_ratio']:.2f} in "
                f"samples run through the model"
            )
    if "precision" in r:
        p = r["precision"]
        names = list(next(iter(p["cosines"].values())))
        lines += [
            "",
            f"gradient cosine to float64 (batch {p['batch']}, eps {p['eps']:g}/255, at {p['at']}; noise: "
            f"a fresh random draw in float64)",
            f"{'method':<22}" + "".join(f"{n:>11}" for n in names),
        ]
        for method, row in p["cosines"].items():
            lines.append(f"{method:<22}" + "".join(f"{row[n]:11.5f}" for n in names))
        if len(p.get("seeds", [0])) > 1:
            lines.append(f"(means over seeds {p['seeds']}; standard deviations in the JSON)")
        lines += policy_lines(p.get("policy", {}))
    if r["targets"]:
        lines += ["", "targets"]
        for t in r["targets"]:
            sign = "<=" if t["kind"] == "max" else ">="
            lines.append(
                f"  {'met ' if t['met'] else 'MISS'}  {t['what']}: {t['value']:.3f} (target {sign} {t['bound']})"
            )
    return "\n".join(lines)
