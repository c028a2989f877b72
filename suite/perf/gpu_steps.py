"""The training iterations the GPU check times and compares: the training loop's, on synthetic batches.

PreActResNet-18 at batch 128 and eps 8/255 on CIFAR-shaped random inputs, the method's precision,
a tensor learning rate (as with CUDA graphs); optionally the run's own random generator, as a run
packed with others draws from.
"""

from __future__ import annotations

import contextlib
import os

import torch

from ..data import DATASETS
from ..engine.cuda_graphs import make_sgd
from ..engine.device import channels_last, training_autocast, uses_tf32
from ..methods import get_method, resolve_hparams
from ..methods import precision as method_precision
from ..methods.perturbation import drawing_from
from ..models import build_model
from .precision import tf32

ARCH, DATASET, BATCH, EPS = "preact_resnet18", "cifar10", 128, 8.0


def synthetic_batch(batch: int, device, seed: int = 0, dataset: str = DATASET):
    """Uniform random images and labels of ``dataset``'s shape (channels_last) on ``device``."""
    info = DATASETS[dataset]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, info.in_channels, info.image_size, info.image_size, generator=g).to(device)
    return channels_last(x), torch.randint(0, info.num_classes, (batch,), generator=g).to(device)


def trainable(
    method: str,
    overrides: dict,
    device,
    *,
    lr: float,
    fp32: bool = False,
    step=None,
    precision: str | None = None,
    generator: torch.Generator | None = None,
    arch: str = ARCH,
    dataset: str = DATASET,
):
    """(model, optimizer, iteration) of one method: the training loop's iteration with a tensor learning
    rate; ``precision`` overrides the method's (``fp32``: float32); random draws from ``generator``
    (None: torch's global generator)."""
    info = DATASETS[dataset]
    model = channels_last(build_model(arch, info.in_channels, info.num_classes, info.mean, info.std).to(device))
    optimizer = make_sgd(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, device=device, tensor_lr=True)
    hparams = resolve_hparams(method, EPS, overrides) if step is None else overrides
    step = step or get_method(method).step
    precision = "fp32" if fp32 else precision or method_precision(method)

    def iteration(x, y):
        with (
            training_autocast(device, cache_enabled=False, precision=precision),
            tf32(uses_tf32(precision)),
            drawing_from(generator),
        ):
            out = step(model, x, y, EPS / 255, **hparams)
        optimizer.step()
        return out

    return model, optimizer, iteration


@contextlib.contextmanager
def deterministic():
    """Deterministic algorithms and no cuDNN autotuning: runs compared take the same kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
