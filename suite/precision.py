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

import torch
import torch.nn.functional as F

from .methods import get_method, resolve_hparams


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
        return {"fp32": (torch.float32, False, False), "fp32+tf32": (torch.float32, False, True),
                "bf16": (torch.float32, True, True)}
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
        row = {p: float(F.cosine_similarity(step_gradient(method, model, x, y, eps, hparams, seed, m), reference,
                                            dim=0)) for p, m in modes(device).items()}
        fresh = step_gradient(method, model, x, y, eps, hparams, seed + 1)
        row["noise"] = float(F.cosine_similarity(fresh, reference, dim=0))
        out[name] = row
    return out
