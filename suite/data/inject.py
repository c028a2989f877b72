"""Injected discriminative features (Ortiz-Jiménez et al., "Catastrophic overfitting can be induced
with discriminative non-robust features", TMLR 2023).

Every image of class ``y`` gets a fixed pattern ``beta * v_y`` added, clipped to the valid range.
``v_y`` is the sign (+1/-1) of the inverse 2-D DCT of one low-frequency DCT basis vector, the same in
every channel: class 0 takes the first basis vector after the constant one in zig-zag order, class 1
the next, and so on. The patterns are linearly separable and small, so a network can learn them at
once; with ``beta`` near the training budget, single-step adversarial training relies on them and
catastrophically overfits at a much smaller eps than on the clean data (``--inject-beta``).
"""

from __future__ import annotations

import math

import torch


def zigzag(height: int, width: int) -> list[tuple[int, int]]:
    """DCT frequencies ``(u, v)`` in JPEG zig-zag order, the constant one first."""
    order = []
    for s in range(height + width - 1):
        diagonal = [(i, s - i) for i in range(height) if 0 <= s - i < width]
        order += diagonal if s % 2 else diagonal[::-1]
    return order


def dct_basis(u: int, v: int, height: int, width: int) -> torch.Tensor:
    """The 2-D DCT-II basis image of frequency ``(u, v)``, up to normalisation (the inverse DCT of a
    one-hot coefficient), in float64."""
    rows = torch.cos(math.pi * (2 * torch.arange(height, dtype=torch.float64) + 1) * u / (2 * height))
    cols = torch.cos(math.pi * (2 * torch.arange(width, dtype=torch.float64) + 1) * v / (2 * width))
    return rows[:, None] * cols[None, :]


def carriers(num_classes: int, channels: int, height: int, width: int) -> torch.Tensor:
    """The per-class patterns ``v_y`` in {-1, +1}, shape (num_classes, channels, height, width).

    Where a basis image is zero up to rounding, the sign is taken as +1 (deterministic on every
    platform)."""
    frequencies = zigzag(height, width)[1 : num_classes + 1]
    if len(frequencies) < num_classes:
        raise ValueError(f"{num_classes} classes need more DCT frequencies than a {height}x{width} image has")
    patterns = [torch.where(dct_basis(u, v, height, width) < -1e-9, -1.0, 1.0) for u, v in frequencies]
    return torch.stack(patterns)[:, None].expand(-1, channels, -1, -1).float()


def inject(x: torch.Tensor, y: torch.Tensor, beta: float, num_classes: int) -> torch.Tensor:
    """``x + beta/255 * v_y``, clipped to the valid range, for uint8 NCHW images ``x`` (0..255) with
    labels ``y`` in ``0..num_classes-1``; returns uint8 images (a ``beta`` that is not a whole number rounds per pixel to the
    nearest level)."""
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"expected uint8 NCHW images, got {x.dtype} {tuple(x.shape)}")
    v = carriers(num_classes, *x.shape[1:]).to(x.device)
    shifted = x.float() + beta * v[y.long()]
    return shifted.round_().clamp_(0, 255).to(torch.uint8)
