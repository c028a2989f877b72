"""Mini-batches from uint8 image tensors kept on the device, with batched augmentation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class DeviceLoader:
    """Iterate ``(x, y)`` batches, ``x`` float in [0, 1] (NCHW), ``y`` int64, on ``device``.

    The whole uint8 data set is moved to ``device`` once, at construction. Per batch:
    optional random crop with zero padding ``crop_padding`` and optional horizontal flip
    of a random half, both done for the whole batch at once. All randomness (order,
    crop offsets, flips) comes from ``generator`` (the global RNG if None), so a run is
    reproducible from the generator's seed.
    """

    def __init__(
        self,
        x_uint8: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        crop_padding: int = 0,
        flip: bool = False,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ):
        if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
            raise ValueError(f"expected uint8 NCHW images, got {x_uint8.dtype} {tuple(x_uint8.shape)}")
        if y.shape[0] != x_uint8.shape[0]:
            raise ValueError(f"{x_uint8.shape[0]} images but {y.shape[0]} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        self.device = torch.device(device)
        self.x = x_uint8.to(self.device)
        self.y = y.to(self.device, dtype=torch.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.crop_padding = int(crop_padding)
        self.flip = flip
        self.generator = generator
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _crop(self, xb: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
        p = self.crop_padding
        b, c, h, w = xb.shape
        padded = F.pad(xb, (p, p, p, p))
        rows = dy[:, None] + torch.arange(h, device=self.device)  # B x H
        cols = dx[:, None] + torch.arange(w, device=self.device)  # B x W
        bi = torch.arange(b, device=self.device)[:, None, None, None]
        ci = torch.arange(c, device=self.device)[None, :, None, None]
        return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]

    def _epoch_draws(self, n: int, starts: list[int]) -> torch.Tensor:
        """Every random number of an epoch, on our device: the order, then per batch the crop rows,
        crop columns and flips, drawn in that order from the generator (on its own device) and
        moved at once. Drawn batch by batch, each move to a GPU was a host sync, three a batch."""
        dev = self.generator.device if self.generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=self.generator, device=dev) if self.shuffle else torch.arange(n, device=dev)
        draws = [order]
        for start in starts:
            b = min(self.batch_size, n - start)
            if self.crop_padding:
                span = 2 * self.crop_padding + 1
                draws += [torch.randint(0, span, (b,), generator=self.generator, device=dev) for _ in range(2)]
            if self.flip:
                draws.append((torch.rand(b, generator=self.generator, device=dev) < 0.5).long())
        return torch.cat(draws).to(self.device)

    def __iter__(self):
        n = self.x.shape[0]
        starts = [s for s in range(0, n, self.batch_size) if not (self.drop_last and s + self.batch_size > n)]
        draws = self._epoch_draws(n, starts)
        order, at = draws[:n], n
        for start in starts:
            idx = order[start : start + self.batch_size]
            b = len(idx)
            xb, yb = self.x[idx], self.y[idx]
            if self.crop_padding:
                xb = self._crop(xb, draws[at : at + b], draws[at + b : at + 2 * b])
                at += 2 * b
            if self.flip:
                xb = torch.where(draws[at : at + b].bool()[:, None, None, None], xb.flip(3), xb)
                at += b
            yield xb.float().div_(255), yb
