"""``suite bench``: what one training iteration, one data epoch and one evaluation cost here.

Every comparison is measured side by side in one run: the variants being compared are timed
in turn within each repetition (the order rotating from one repetition to the next), after
warm-up calls, and reported as medians and as ratios of medians. Four sections:

* ``methods``: one training iteration (zero_grad, the method's step, optimizer step) of each
  training method, relative to standard training and to Fast-AT, with its peak memory; and
  the error of Fast-BAT's finite-difference correction against the exact one (``fd_rel_error``);
  and Fast-AT's and Fast-BAT's iteration in the contiguous layout against channels_last, the
  layout the suite trains in on every device (``contiguous_over_channels_last``);
* ``reference``: Fast-BAT and Fast-AT-GA as the suite implements them against the step-by-step
  transcriptions of the reference implementation in :mod:`suite.reference_impl`;
* ``pipeline``: a training epoch on synthetic uint8 images through :class:`DeviceLoader` (batched
  crop + flip on the device) and through torch's DataLoader with torchvision's per-image
  transforms, with a standard training step per batch and without (data only);
* ``eval``: PGD-k-r with early exit against the full attack, on a small CNN trained here on
  Fashion-MNIST with Fast-AT, at an eps calibrated so that its robust accuracy is near 50%;
* ``precision``: each method's parameter gradient in the device's precisions against float64,
  beside its sampling noise (:mod:`suite.precision`), at initialization or at a run's checkpoint.

The iteration mirrors the training loop: channels_last, and on CUDA bf16 autocast.
"""
from __future__ import annotations

import copy
import ctypes
import gc
import math
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .attacks import uniform_init
from .data import DATASETS, DeviceLoader, load_splits
from .errors import SuiteError
from .eval import clean_accuracy, robust_accuracy
from .methods import METHODS, fast_bat, get_method, resolve_hparams
from .methods import precision as method_precision
from .models import ARCHS, build_model
from .precision import tf32
from .reference_impl import fast_at_ga_reference, fast_bat_reference
from .train import channels_last, pick_device, sync, training_autocast

SECTIONS = ("methods", "reference", "pipeline", "eval", "precision")

# (name, method, hyperparameter overrides) of the training iterations compared: every registered
# method at its defaults, except those listed in VARIANTS_OF, which are timed in these variants
VARIANTS_OF = {"pgd": [("pgd2", {"steps": 2}), ("pgd10", {"steps": 10})],
               "fast_bat": [("fast_bat", {}), ("fast_bat_fd", {"implicit": "finite_diff"})]}
METHOD_VARIANTS = [(name, method, overrides) for method in METHODS
                   for name, overrides in VARIANTS_OF.get(method, [(method, {})])]
LAYOUT_VARIANTS = ("fast_at", "fast_bat")   # also timed in the contiguous layout

# The targets: (what, figure in the JSON as section/key, bound, "max" or "min")
TARGETS = [
    ("Fast-BAT (exact) / Fast-AT iteration", "methods/ratio_to_fast_at/fast_bat", 2.5, "max"),
    ("Fast-BAT finite-diff / Fast-AT iteration", "methods/ratio_to_fast_at/fast_bat_fd", 2.2, "max"),
    ("Fast-AT-GA / Fast-AT iteration", "methods/ratio_to_fast_at/fast_at_ga", 2.0, "max"),
    ("Fast-BAT: reference / suite time", "reference/saving/fast_bat", 1.15, "min"),
    ("DataLoader / DeviceLoader epoch (training)", "pipeline/dataloader_over_device_loader/train", 2.0, "min"),
    ("early-exit / full PGD cost", "eval/cost_ratio", 0.55, "max"),
]


@dataclass
class Settings:
    """What to measure; None fields take the device's default (see :func:`resolve`)."""
    arch: str = "preact_resnet18"
    dataset: str = "cifar10"
    batch_size: int | None = None
    eps: float = 8.0                      # /255
    reps: int | None = None
    warmup: int | None = None
    device: str = "auto"
    quick: bool = False
    sections: tuple = SECTIONS
    images: int | None = None             # pipeline: synthetic images per epoch
    workers: int | None = None            # pipeline: DataLoader worker processes (besides 0)
    data_dir: Path = Path("data")
    eval_points: int | None = None
    eval_steps: int | None = None
    eval_restarts: int | None = None
    eval_reps: int | None = None          # eval: timed rounds (no warm-up: the calibration warms up)
    eval_train_iters: int | None = None
    fd_batch: int | None = None
    precision_batch: int | None = None
    precision_run: Path | None = None     # precision: a run record folder, measured at its last checkpoint
    seed: int = 0
    threads: int | None = None            # CPU: torch's intra-op threads (None: torch's default)


# Defaults by device, and the much smaller sizes of --quick (for the test suite).
DEFAULTS = {
    "cuda": dict(batch_size=128, reps=20, warmup=3, images=16384, eval_points=1000, eval_steps=50,
                 eval_restarts=10, eval_reps=5, eval_train_iters=400, fd_batch=32, precision_batch=64),
    "cpu": dict(batch_size=32, reps=5, warmup=1, images=2048, eval_points=200, eval_steps=50,
                eval_restarts=10, eval_reps=3, eval_train_iters=300, fd_batch=32, precision_batch=64),
    "quick": dict(batch_size=8, reps=2, warmup=1, images=64, eval_points=32, eval_steps=5,
                  eval_restarts=2, eval_reps=2, eval_train_iters=10, fd_batch=4, precision_batch=4),
}
EVAL_TRAIN = dict(arch="small_cnn", dataset="fashion_mnist", method="fast_at", batch_size=128, lr=0.05,
                  momentum=0.9, train_points=8192)
EVAL_TARGET_ACC = 50.0                 # robust accuracy (%) the calibrated eps aims at
EVAL_EPS_RANGE = (0.0, 64.0)           # /255, searched by bisection
CALIBRATION = dict(steps=10, restarts=1, bisections=8)
PIPELINE_PADDING = 4


def resolve(settings: Settings) -> tuple[Settings, torch.device]:
    """Fill the device's defaults in; refuse unknown names before anything is measured."""
    device = pick_device(settings.device)
    if settings.arch not in ARCHS:
        raise SuiteError(f"unknown arch {settings.arch!r}; choose one of: {', '.join(ARCHS)}")
    if settings.dataset not in DATASETS:
        raise SuiteError(f"unknown dataset {settings.dataset!r}; choose one of: {', '.join(DATASETS)}")
    unknown = set(settings.sections) - set(SECTIONS)
    if unknown:
        raise SuiteError(f"unknown bench section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if settings.precision_run is not None:          # the run's setting is what is measured: say so in the header
        config = _precision_run(Path(settings.precision_run))[1]
        settings = replace(settings, arch=config.arch, dataset=config.dataset, eps=config.eps)
    defaults = DEFAULTS["quick" if settings.quick else device.type]
    values = {k: (defaults[k] if getattr(settings, k) is None else getattr(settings, k)) for k in defaults}
    if settings.workers is None:
        values["workers"] = 0 if settings.quick else min(4, os.cpu_count() or 1)
    for name in ("batch_size", "reps", "images", "eval_points", "eval_steps", "eval_restarts", "eval_reps",
                 "fd_batch", "precision_batch"):
        if values[name] < 1:
            raise SuiteError(f"--{name.replace('_', '-')} must be positive, got {values[name]}")
    resolved = Settings(**{**asdict(settings), **values})
    return resolved, device


# -- measuring ------------------------------------------------------------------------------

def interleaved(fns: dict, reps: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each call of ``fns[name]()``: ``warmup`` untimed rounds, then ``reps`` timed rounds.

    Within a round every function runs once, in an order that rotates from round to round, so
    drifting load (other processes, clock changes) falls on all variants alike.
    """
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(warmup + reps):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = timed(fns[name], device)
            if r >= warmup:
                times[name].append(seconds)
    return times


def timed(fn, device: torch.device) -> float:
    """Seconds one call of ``fn`` takes: CUDA events on a GPU (the device's clock), else wall clock."""
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(t) for name, t in times.items()}


def ratios(med: dict[str, float], base: str) -> dict[str, float]:
    return {name: t / med[base] for name, t in med.items()}


def peak_memory(fn, device: torch.device) -> int | None:
    """Bytes that one call of ``fn`` needs above what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU (Linux with glibc): the rise of the
    process's resident high-water mark, reset before the call (``/proc/self/clear_refs``) after
    returning freed heap memory to the system (``malloc_trim``); None where that is not possible.
    """
    gc.collect()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                               # reset VmHWM to the current VmRSS
        before = _proc_status_kib("VmRSS")
        fn()
        return 1024 * (_proc_status_kib("VmHWM") - before)
    except (OSError, AttributeError, ValueError):
        return None


def _proc_status_kib(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise ValueError(key)
    return int(match.group(1))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        match = None
    cpu = match.group(1).strip() if match else (platform.processor() or platform.machine())
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} torch thread{'s' if threads > 1 else ''}"


def _model(arch: str, info, device: torch.device):
    model = channels_last(build_model(arch, info.in_channels, info.num_classes, info.mean, info.std).to(device))
    # lr 0: the timed iterations do all the optimizer's arithmetic but leave the weights alone
    return model, torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=5e-4)


# -- sections -------------------------------------------------------------------------------

def bench_iterations(s: Settings, device: torch.device, with_methods: bool, with_reference: bool) -> dict:
    """The ``methods`` and ``reference`` sections, timed in one interleaved loop."""
    info = DATASETS[s.dataset]
    model, optimizer = _model(s.arch, info, device)
    x = channels_last(torch.rand(s.batch_size, info.in_channels, info.image_size, info.image_size).to(device))
    y = torch.randint(0, info.num_classes, (s.batch_size,), device=device)
    eps = s.eps / 255

    def iteration(step, precision="bf16", net=model, inputs=x, opt=optimizer, **hparams):
        def run():
            opt.zero_grad(set_to_none=True)
            with training_autocast(device, precision=precision), tf32(precision != "fp32"):
                step(net, inputs, y, eps, **hparams)
            opt.step()
        return run

    fns = {}
    variants = METHOD_VARIANTS if with_methods else [v for v in METHOD_VARIANTS if v[0] in ("fast_bat", "fast_at_ga")]
    if with_methods:    # the layout the suite does not train in, for the layout ratio
        plain_model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
        plain_optimizer = torch.optim.SGD(plain_model.parameters(), lr=0.0, momentum=0.9, weight_decay=5e-4)
        plain_x = x.contiguous()
    for name, method, overrides in variants:
        hparams = resolve_hparams(method, s.eps, overrides)
        fns[name] = iteration(get_method(method).step, precision=method_precision(method), **hparams)
        if with_methods and name in LAYOUT_VARIANTS:
            fns[f"{name}_contiguous"] = iteration(get_method(method).step, precision=method_precision(method),
                                                  net=plain_model, inputs=plain_x, opt=plain_optimizer, **hparams)
    if with_reference:
        bat, ga = resolve_hparams("fast_bat", s.eps), resolve_hparams("fast_at_ga", s.eps)
        fns["fast_bat_reference"] = iteration(fast_bat_reference, lmbda=bat["lmbda"], ll_step=bat["ll_step"])
        fns["fast_at_ga_reference"] = iteration(fast_at_ga_reference, coef=ga["coef"])
    _progress(f"timing {len(fns)} training iterations ({s.reps} rounds + {s.warmup} warm-up)")
    times = interleaved(fns, s.reps, s.warmup, device)
    med = medians(times)
    out = {}
    if with_methods:
        names = [v[0] for v in METHOD_VARIANTS]
        out["methods"] = {
            "seconds": {n: med[n] for n in names},
            "ratio_to_standard": {n: med[n] / med["standard"] for n in names},
            "ratio_to_fast_at": {n: med[n] / med["fast_at"] for n in names},
            "peak_memory_bytes": {n: peak_memory(fns[n], device) for n in names},
            "memory_measure": "cuda max_memory_allocated" if device.type == "cuda" else "rise of peak RSS",
            # > 1: channels_last (the suite's layout) is faster than the contiguous layout
            "contiguous_over_channels_last": {n: med[f"{n}_contiguous"] / med[n] for n in LAYOUT_VARIANTS},
            **fd_error(s),
        }
    if with_reference:
        out["reference"] = {
            "seconds": {n: med[n] for n in ("fast_bat", "fast_bat_reference", "fast_at_ga", "fast_at_ga_reference")},
            "saving": {"fast_bat": med["fast_bat_reference"] / med["fast_bat"],
                       "fast_at_ga": med["fast_at_ga_reference"] / med["fast_at_ga"]},
        }
    return out


def fd_error(s: Settings) -> dict:
    """Relative error of Fast-BAT's finite-difference correction against the exact one.

    On a small CNN at initialization, synthetic Fashion-MNIST-shaped inputs, the default hyperparameters, the
    same linearization point z for both: the correction term is the exact step's gradient minus
    its gradient without correction (lambda = inf). Measured in float32 (the training precision
    on a CPU) and float64, with the correction's share of the whole gradient (norm ratio).
    """
    _progress("measuring the finite-difference error")
    hp, info = fast_bat.defaults(s.eps), DATASETS["fashion_mnist"]
    eps, a = s.eps / 255, hp["ll_step"] / 255
    result = {}
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(s.seed)
        model = build_model("small_cnn", info.in_channels, info.num_classes, info.mean, info.std).to(dtype)
        x = torch.rand(s.fd_batch, info.in_channels, info.image_size, info.image_size, dtype=dtype)
        y = torch.randint(0, info.num_classes, (s.fd_batch,))
        z = uniform_init(x, eps)

        def gradient(implicit, lmbda):
            model.zero_grad(set_to_none=True)
            fast_bat.implicit_step(model, x, y, z, eps, a=a, lmbda=lmbda, implicit=implicit)
            return torch.cat([p.grad.flatten() for p in model.parameters()])

        plain, exact = gradient("exact", math.inf), gradient("exact", hp["lmbda"])
        error = float((gradient("finite_diff", hp["lmbda"]) - exact).norm())
        suffix = "" if dtype == torch.float32 else "_float64"
        result[f"fd_rel_error{suffix}"] = error / float((exact - plain).norm())
        result[f"fd_rel_error_total{suffix}"] = error / float(exact.norm())
        result[f"correction_share{suffix}"] = float((exact - plain).norm() / exact.norm())
    return result


class PerImageDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: a PIL image from HWC uint8, then ``transform``."""

    def __init__(self, images_nchw: torch.Tensor, labels: torch.Tensor, transform):
        hwc = images_nchw.permute(0, 2, 3, 1).numpy()
        self.images = hwc[..., 0] if hwc.shape[-1] == 1 else hwc
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def bench_pipeline(s: Settings, device: torch.device) -> dict:
    """A training epoch's data path: DeviceLoader vs DataLoader with per-image transforms."""
    from torchvision import transforms as T

    info = DATASETS[s.dataset]
    g = torch.Generator().manual_seed(s.seed)
    images = torch.randint(0, 256, (s.images, info.in_channels, info.image_size, info.image_size),
                           dtype=torch.uint8, generator=g)
    labels = torch.randint(0, info.num_classes, (s.images,), generator=g)
    model, optimizer = _model(s.arch, info, device)
    standard = get_method("standard").step
    loaders = {"device_loader": DeviceLoader(images, labels, s.batch_size, shuffle=True, crop_padding=PIPELINE_PADDING,
                                             flip=True, device=device, generator=torch.Generator().manual_seed(s.seed))}
    transform = T.Compose([T.RandomCrop(info.image_size, padding=PIPELINE_PADDING), T.RandomHorizontalFlip(),
                           T.ToTensor()])
    dataset = PerImageDataset(images, labels, transform)
    for workers in sorted({0, s.workers}):
        loaders[f"dataloader_{workers}w"] = torch.utils.data.DataLoader(
            dataset, batch_size=s.batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
            pin_memory=device.type == "cuda")

    def epoch(loader, train: bool):
        def run():
            for xb, yb in loader:
                xb, yb = channels_last(xb.to(device, non_blocking=True)), yb.to(device, non_blocking=True)
                if train:
                    optimizer.zero_grad(set_to_none=True)
                    with training_autocast(device):
                        standard(model, xb, yb, s.eps / 255)
                    optimizer.step()
        return run

    fns = {f"{mode}/{name}": epoch(loader, mode == "train")
           for mode in ("train", "data") for name, loader in loaders.items()}
    _progress(f"timing {len(fns)} epochs of {s.images} images ({s.reps} rounds + {s.warmup} warm-up)")
    med = medians(interleaved(fns, s.reps, s.warmup, device))
    out = {"images": s.images, "augmentation": f"random crop {info.image_size} padding {PIPELINE_PADDING} + flip",
           "seconds": {mode: {name: med[f"{mode}/{name}"] for name in loaders} for mode in ("train", "data")}}
    fastest = min((n for n in loaders if n != "device_loader"), key=lambda n: med[f"train/{n}"])
    out["dataloader_over_device_loader"] = {
        mode: med[f"{mode}/{fastest}"] / med[f"{mode}/device_loader"] for mode in ("train", "data")}
    out["compared_dataloader"] = fastest
    out["all_ratios"] = {mode: {n: med[f"{mode}/{n}"] / med[f"{mode}/device_loader"] for n in loaders}
                         for mode in ("train", "data")}
    return out


def bench_eval(s: Settings, device: torch.device) -> dict:
    """PGD-k-r with early exit vs the full attack, near 50% robust accuracy."""
    c = EVAL_TRAIN
    try:
        splits = load_splits(c["dataset"], s.data_dir, download=False)
    except SuiteError as err:
        return {"skipped": f"needs Fashion-MNIST (in --data-dir or the system's datasets): {err}"}
    info = splits.info
    torch.manual_seed(s.seed)
    model = build_model(c["arch"], info.in_channels, info.num_classes, info.mean, info.std).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["momentum"])
    loader = DeviceLoader(splits.train_x[:c["train_points"]], splits.train_y[:c["train_points"]], c["batch_size"],
                          shuffle=True, device=device, generator=torch.Generator().manual_seed(s.seed))
    method, hparams = get_method(c["method"]), resolve_hparams(c["method"], s.eps)
    _progress(f"training {c['arch']} on {c['dataset']} with {c['method']} for {s.eval_train_iters} iterations")
    done = 0
    while done < s.eval_train_iters:
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            method.step(model, xb, yb, s.eps / 255, **hparams)
            optimizer.step()
            done += 1
            if done == s.eval_train_iters:
                break
    model.eval()
    x = splits.test_x[:s.eval_points].to(device).float().div_(255)
    y = splits.test_y[:s.eval_points].to(device)
    eps = calibrate_eps(model, x, y)
    counted = SampleCounter(model)
    runs = {"early_exit": [], "full": []}
    work = {"early_exit": [], "full": []}

    def attack(early_exit: bool):
        name = "early_exit" if early_exit else "full"

        def run():
            counted.samples = 0
            acc = robust_accuracy(counted, x, y, eps, s.eval_steps, s.eval_restarts, early_exit=early_exit)
            runs[name].append(acc)
            work[name].append(counted.samples)
        return run

    _progress(f"timing PGD-{s.eval_steps}-{s.eval_restarts} on {len(x)} points at eps {255 * eps:.2f}/255 "
              f"({s.eval_reps} rounds)")
    med = medians(interleaved({"early_exit": attack(True), "full": attack(False)}, s.eval_reps, 0, device))
    ra = {k: statistics.mean(v) for k, v in runs.items()}
    samples = {k: statistics.mean(v) for k, v in work.items()}
    return {"attack": f"PGD-{s.eval_steps}-{s.eval_restarts}", "rounds": s.eval_reps, "points": len(x),
            "eps": 255 * eps,
            "model": f"{c['arch']} trained {s.eval_train_iters} iterations of {c['method']} at eps {s.eps}/255",
            "clean_acc": clean_accuracy(model, x, y), "robust_acc": ra,
            "robust_acc_abs_diff": abs(ra["early_exit"] - ra["full"]),
            "seconds": med, "cost_ratio": med["early_exit"] / med["full"],
            "forward_samples": samples, "work_ratio": samples["early_exit"] / samples["full"]}


def bench_precision(s: Settings, device: torch.device) -> dict:
    """Cosines of each method's parameter gradient in this device's precisions to its float64 value:
    at initialization on random inputs, or with ``precision_run`` at that run's last checkpoint on the
    first points of its own test data (and its eps)."""
    from .precision import gradient_cosines

    if s.precision_run is not None:
        model, x, y, eps, at = trained_batch(Path(s.precision_run), s.precision_batch, s.data_dir, device)
    else:
        info = DATASETS[s.dataset]
        torch.manual_seed(s.seed)
        model = build_model(s.arch, info.in_channels, info.num_classes, info.mean, info.std).to(device)
        x = torch.rand(s.precision_batch, info.in_channels, info.image_size, info.image_size, device=device)
        y = torch.randint(0, info.num_classes, (s.precision_batch,), device=device)
        eps, at = s.eps, f"initialization ({s.arch}, random inputs)"
    _progress(f"measuring gradient precision at {at}, batch {s.precision_batch}")
    return {"batch": s.precision_batch, "at": at, "eps": eps,
            "cosines": gradient_cosines(model, x, y, eps / 255, seed=s.seed)}


def _precision_run(run_dir: Path):
    """The run record at ``run_dir`` and its config; refused unless it has a config and a last checkpoint."""
    from .records import RunDir

    run = RunDir(run_dir.parent.parent, run_dir.name)
    if not run.config.is_file() or not run.last.is_file():
        raise SuiteError(f"--precision-run {run_dir}: not a run record with a checkpoint (expected "
                         f"{run.config.name} and {run.last.name} in it; see suite runs)")
    return run, run.read_config()


def trained_batch(run_dir: Path, batch: int, data_dir: Path, device: torch.device):
    """A finished run's network at its last checkpoint (train mode, as a training step sees it) and the
    first ``batch`` points of its test data: (model, x, y, eps, description)."""
    from .config import RunOptions
    from .train import RunData, checkpoint_model

    run, config = _precision_run(run_dir)
    data = RunData.load(config, RunOptions(data_dir=data_dir), device)
    if batch > len(data.test_x):
        raise SuiteError(f"--precision-batch {batch} exceeds the run's {len(data.test_x)} test points")
    model, epoch = checkpoint_model(config, data.info, run.last, device)
    return (model, data.test_x[:batch], data.test_y[:batch], config.eps,
            f"{run_dir.name}, last checkpoint (epoch {epoch + 1})")


class SampleCounter(torch.nn.Module):
    """Wraps a model and counts the samples it is run on: the attack's work, whatever the load."""

    def __init__(self, model):
        super().__init__()
        self.model, self.samples = model, 0

    def forward(self, x):
        self.samples += x.shape[0]
        return self.model(x)


def calibrate_eps(model, x, y) -> float:
    """The eps (pixel units) at which a cheap PGD puts the robust accuracy nearest 50%, by bisection."""
    lo, hi = (e / 255 for e in EVAL_EPS_RANGE)
    best = (math.inf, hi)
    for _ in range(CALIBRATION["bisections"]):
        mid = (lo + hi) / 2
        acc = robust_accuracy(model, x, y, mid, CALIBRATION["steps"], CALIBRATION["restarts"])
        best = min(best, (abs(acc - EVAL_TARGET_ACC), mid))
        lo, hi = (mid, hi) if acc > EVAL_TARGET_ACC else (lo, mid)
    return best[1]


# -- the whole bench ------------------------------------------------------------------------

def run_bench(settings: Settings) -> dict:
    """Measure the selected sections; returns every figure with the device and the settings."""
    s, device = resolve(settings)
    if s.threads is not None:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    result = {"device": device_name(device), "device_type": device.type, "torch": torch.__version__,
              "python": sys.version.split()[0],
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(s).items()}}
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


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- printing -------------------------------------------------------------------------------

def _mem(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:8.1f} MiB"


def format_report(r: dict) -> str:
    """The human-readable table of :func:`run_bench`'s result."""
    s = r["settings"]
    info = DATASETS[s["dataset"]]
    lines = [f"suite bench on {r['device']} ({r['device_type']}), torch {r['torch']}",
             f"{s['arch']} on {info.in_channels}x{info.image_size}x{info.image_size} inputs, "
             f"{info.num_classes} classes, "
             f"batch {s['batch_size']}, eps {s['eps']:g}/255; medians of {s['reps']} interleaved rounds after "
             f"{s['warmup']} warm-up"]
    if "methods" in r:
        m = r["methods"]
        lines += ["", f"{'training iteration':<22}{'ms':>10}{'x standard':>12}{'x fast_at':>11}  peak memory "
                      f"({m['memory_measure']})"]
        for n, t in m["seconds"].items():
            lines.append(f"{n:<22}{1e3 * t:10.1f}{m['ratio_to_standard'][n]:12.2f}{m['ratio_to_fast_at'][n]:11.2f}  "
                         f"{_mem(m['peak_memory_bytes'][n])}")
        lines.append(f"Fast-BAT finite-diff vs exact correction, relative error: {m['fd_rel_error']:.2e} (float32), "
                     f"{m['fd_rel_error_float64']:.2e} (float64); of the whole gradient: "
                     f"{m['fd_rel_error_total']:.2e} (float32), {m['fd_rel_error_total_float64']:.2e} (float64); "
                     f"the exact correction is {m['correction_share']:.1e} of the whole gradient's norm")
        lines.append("contiguous layout / channels_last (the suite's), per iteration: " + ", ".join(
            f"{n} {ratio:.2f}" for n, ratio in m["contiguous_over_channels_last"].items()))
    if "reference" in r:
        ref = r["reference"]
        lines += ["", f"{'suite vs reference':<22}{'suite ms':>10}{'reference ms':>14}{'saving (ref/suite)':>20}"]
        for n in ("fast_bat", "fast_at_ga"):
            lines.append(f"{n:<22}{1e3 * ref['seconds'][n]:10.1f}{1e3 * ref['seconds'][n + '_reference']:14.1f}"
                         f"{ref['saving'][n]:20.2f}")
    if "pipeline" in r:
        p = r["pipeline"]
        lines += ["", f"data pipeline, one epoch of {p['images']} images ({p['augmentation']})",
                  f"{'loader':<22}{'train ms':>10}{'x device':>10}{'data ms':>10}{'x device':>10}"]
        for n in p["seconds"]["train"]:
            lines.append(f"{n:<22}{1e3 * p['seconds']['train'][n]:10.1f}{p['all_ratios']['train'][n]:10.2f}"
                         f"{1e3 * p['seconds']['data'][n]:10.1f}{p['all_ratios']['data'][n]:10.2f}")
    if "eval" in r:
        e = r["eval"]
        if "skipped" in e:
            lines += ["", f"evaluation: skipped ({e['skipped']})"]
        else:
            lines += ["", f"{e['attack']} ({e['rounds']} rounds) on {e['points']} Fashion-MNIST test points, "
                          f"eps {e['eps']:.2f}/255, "
                          f"{e['model']}; clean accuracy {e['clean_acc']:.1f}%",
                      f"{'attack':<22}{'ms':>10}{'robust acc %':>14}"]
            for n in ("early_exit", "full"):
                lines.append(f"{n:<22}{1e3 * e['seconds'][n]:10.1f}{e['robust_acc'][n]:14.1f}")
            lines.append(f"cost ratio early-exit / full: {e['cost_ratio']:.2f} in time, {e['work_ratio']:.2f} in "
                         f"samples run through the model")
    if "precision" in r:
        p = r["precision"]
        names = list(next(iter(p["cosines"].values())))
        lines += ["", f"gradient cosine to float64 (batch {p['batch']}, eps {p['eps']:g}/255, at {p['at']}; noise: "
                      f"a fresh random draw in float64)", f"{'method':<22}" + "".join(f"{n:>11}" for n in names)]
        for method, row in p["cosines"].items():
            lines.append(f"{method:<22}" + "".join(f"{row[n]:11.5f}" for n in names))
    if r["targets"]:
        lines += ["", "targets"]
        for t in r["targets"]:
            sign = "<=" if t["kind"] == "max" else ">="
            lines.append(f"  {'met ' if t['met'] else 'MISS'}  {t['what']}: {t['value']:.3f} "
                         f"(target {sign} {t['bound']})")
    return "\n".join(lines)

