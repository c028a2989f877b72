"""How far each training method's parameter gradient moves with the precision the network computes in.

For one batch, the gradient a method's step accumulates is computed with the network in float64
(the reference), and in each precision of the device: on a CPU float32 and bf16 autocast, on
CUDA float32 (TF32 off), float32 with TF32 convolutions and matmuls, and bf16 autocast. Each is
compared with the reference by cosine. Beside it, the method's own sampling noise: the cosine
between the float64 gradient and the float64 gradient with a fresh draw of the method's
randomness (random start, GradAlign's noise). A precision whose cosine stays above the noise
cosine changes the gradient less than the method's sampling already does.

Only the network changes precision: the batch, the perturbations and their random draws stay in
float64 (:class:`Precision` casts the input on the way in and the logits on the way out), so
every variant draws the same random numbers and the cosines measure rounding alone.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import DATASETS
from ..errors import SuiteError
from ..methods import get_method, resolve_hparams
from ..models import build_model
from .timing import progress

# (name, method, overrides) measured
PRECISION_METHODS = [
    ("standard", "standard", {}),
    ("fast_at", "fast_at", {}),
    ("fast_at_ga", "fast_at_ga", {}),
    ("pgd2", "pgd", {"steps": 2}),
    ("fast_bat", "fast_bat", {}),
]


class Precision(torch.nn.Module):
    """The network in ``dtype`` (and under bf16 autocast if asked), fed and read in float64."""

    def __init__(self, model, dtype, autocast: bool):
        super().__init__()
        self.model, self.dtype, self.autocast = model, dtype, autocast

    def forward(self, x):
        kind = x.device.type
        amp = torch.autocast(kind, dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        with amp:
            out = self.model(x.to(self.dtype))
        return out.to(torch.float64)


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 for CUDA convolutions and matmuls, restored afterwards."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def modes(device: torch.device) -> dict:
    """Precision name -> (network dtype, autocast, TF32) measured on this device."""
    if device.type == "cuda":
        return {
            "fp32": (torch.float32, False, False),
            "fp32+tf32": (torch.float32, False, True),
            "bf16": (torch.float32, True, True),
        }
    return {"fp32": (torch.float32, False, False), "bf16": (torch.float32, True, False)}


def step_gradient(method: str, model, x, y, eps: float, hparams: dict, seed: int, mode=None) -> torch.Tensor:
    """The parameter gradient one step of ``method`` accumulates (float64 vector); ``mode`` as in :func:`modes`,
    None for float64."""
    dtype, autocast, use_tf32 = mode or (torch.float64, False, False)
    net = copy.deepcopy(model).to(dtype)
    torch.manual_seed(seed)
    with tf32(use_tf32):
        get_method(method).step(Precision(net, dtype, autocast), x, y, eps, **hparams)
    return torch.cat([p.grad.flatten().double() for p in net.parameters() if p.grad is not None])


def gradient_cosines(model, x, y, eps: float, seed: int = 0, methods=PRECISION_METHODS) -> dict:
    """{method: {precision: cosine to float64, ..., "noise": cosine of a fresh random draw}}."""
    device = x.device
    x = x.double()
    out = {}
    for name, method, overrides in methods:
        hparams = resolve_hparams(method, eps * 255, overrides)
        reference = step_gradient(method, model, x, y, eps, hparams, seed)
        row = {
            p: float(F.cosine_similarity(step_gradient(method, model, x, y, eps, hparams, seed, m), reference, dim=0))
            for p, m in modes(device).items()
        }
        fresh = step_gradient(method, model, x, y, eps, hparams, seed + 1)
        row["noise"] = float(F.cosine_similarity(fresh, reference, dim=0))
        out[name] = row
    return out


# -- the ``precision`` section of suite bench ------------------------------------------------


def bench_precision(s, device: torch.device) -> dict:
    """Cosines of each method's parameter gradient in this device's precisions to its float64 value:
    at initialization on random inputs, or with ``precision_run`` at that run's last checkpoint on the
    first points of its own test data (and its eps)."""
    if s.precision_run is not None:
        model, x, y, eps, at = trained_batch(Path(s.precision_run), s.precision_batch, s.data_dir, device)
    else:
        info = DATASETS[s.dataset]
        torch.manual_seed(s.seed)
        model = build_model(s.arch, info.in_channels, info.num_classes, info.mean, info.std).to(device)
        x = torch.rand(s.precision_batch, info.in_channels, info.image_size, info.image_size, device=device)
        y = torch.randint(0, info.num_classes, (s.precision_batch,), device=device)
        eps, at = s.eps, f"initialization ({s.arch}, random inputs)"
    progress(f"measuring gradient precision at {at}, batch {s.precision_batch}")
    return {
        "batch": s.precision_batch,
        "at": at,
        "eps": eps,
        "cosines": gradient_cosines(model, x, y, eps / 255, seed=s.seed),
    }


def run_record(run_dir: Path):
    """The run record at ``run_dir`` and its config; refused unless it has a config and a last checkpoint."""
    from ..store import RunDir

    run = RunDir(run_dir.parent.parent, run_dir.name)
    if not run.config.is_file() or not run.last.is_file():
        raise SuiteError(
            f"--precision-run {run_dir}: not a run record with a checkpoint (expected "
            f"{run.config.name} and {run.last.name} in it; see suite runs)"
        )
    return run, run.read_config()


def trained_batch(run_dir: Path, batch: int, data_dir: Path, device: torch.device):
    """A finished run's network at its last checkpoint (train mode, as a training step sees it) and the
    first ``batch`` points of its test data: (model, x, y, eps, description)."""
    from ..config import RunOptions
    from ..engine.trainer import RunData, checkpoint_model

    run, config = run_record(run_dir)
    data = RunData.load(config, RunOptions(data_dir=data_dir), device)
    if batch > len(data.test_x):
        raise SuiteError(f"--precision-batch {batch} exceeds the run's {len(data.test_x)} test points")
    model, epoch = checkpoint_model(config, data.info, run.last, device)
    return (
        model,
        data.test_x[:batch],
        data.test_y[:batch],
        config.eps,
        f"{run_dir.name}, last checkpoint (epoch {epoch + 1})",
    )
