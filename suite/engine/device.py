"""Where a run computes: the device, its layout, precision and synchronisation.

The suite trains and evaluates in the channels_last layout on every device (on CUDA it speeds up
convolutions; on a CPU it speeds up max-pooling; figures in docs/performance.md), under bf16
autocast on CUDA unless a method asks for float32 or mixed precision (its ``PRECISION``).
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import SuiteError
from ..methods import PRECISIONS
from ..models.second_order import float32_second_order


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise SuiteError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SuiteError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


def channels_last(tensor_or_model):
    """An image batch or a model in the channels_last layout, the suite's on every device (faster
    convolutions on CUDA, faster max-pooling on a CPU; ``suite bench`` prints the layout ratio).
    Tensors other than 4-D batches are returned unchanged."""
    if isinstance(tensor_or_model, torch.Tensor):
        return (
            tensor_or_model.contiguous(memory_format=torch.channels_last)
            if tensor_or_model.dim() == 4
            else tensor_or_model
        )
    return tensor_or_model.to(memory_format=torch.channels_last)


def training_autocast(device: torch.device, cache_enabled: bool = True, precision: str = "bf16"):
    """The training step's precision on CUDA (the method's ``PRECISION``): "bf16", bf16 autocast;
    "mixed", bf16 autocast except the second-order forward passes, in float32
    (:func:`suite.models.second_order.float32_second_order`); "fp32", none. Full precision elsewhere.
    A CUDA graph's capture needs ``cache_enabled=False``."""
    if precision not in PRECISIONS:
        raise SuiteError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache_enabled))
    if precision == "mixed":
        stack.enter_context(float32_second_order())
    return stack


def uses_tf32(precision: str) -> bool:
    """TF32 convolutions and matmuls on CUDA: with "bf16" only ("mixed" keeps its float32 passes float32)."""
    return precision == "bf16"


def use_cuda_graphs(options, device: torch.device) -> bool:
    """Whole-iteration CUDA graphs (``options.cuda_graphs``): the default on CUDA, where an eager
    iteration is host-bound (``--no-cuda-graphs`` trains eagerly); never off CUDA."""
    return bool(options.cuda_graphs) and device.type == "cuda"


def sync(device: torch.device) -> None:
    """Wait for the work queued on the current stream of the device (for honest wall-clock timing):
    a run's own work, also when other runs share the process on streams of their own (a device-wide
    synchronization would wait for theirs too, and fail while one of them captures a CUDA graph)."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
