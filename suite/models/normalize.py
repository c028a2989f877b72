"""Input normalization that lives inside the model.

Attacks and training code work on images in [0, 1]; the wrapper maps them to
the normalized space the network was built for, so the perturbation budget
(eps) is always measured in pixel units.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalized(nn.Module):
    """Compute ``net((x - mean) / std)`` for inputs ``x`` in [0, 1].

    ``mean`` and ``std`` are stored as non-persistent buffers of shape
    (1, C, 1, 1): they follow ``.to(device)`` but are not written to the
    state dict, which therefore holds only the weights of ``net``.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.net = net
        mean_t = torch.as_tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.as_tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
