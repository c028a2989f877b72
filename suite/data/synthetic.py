"""``synthetic_cifar10``: a data set of CIFAR-10's shape and size, generated from a seed, with no files.

It exists to time and exercise the CIFAR-10 protocol (PreActResNet-18, 20 epochs, PGD-50-10 on
10k test points, AutoAttack) where CIFAR-10 cannot be fetched, as on an offline GPU box. It is
not CIFAR-10 and nothing reports it as CIFAR-10: the paper comparison matches ``cifar10`` only.

50,000 training and 10,000 test images, 3 x 32 x 32 uint8, 10 balanced classes. An image of class
c is mid-grey plus

* a **shape**: a random mixture of ``MODES`` smooth colour patterns of class c (low spatial
  frequencies; the class's prototypes, several per class so that a class is not one template);
* a **texture**: class c's fixed high-frequency pattern at a small, random amplitude (a few
  /255): easy to learn and easy to attack, the non-robust feature that makes robust accuracy
  fall below clean accuracy and lets single-step training overfit catastrophically;
* **nuisance**: a random mixture of smooth patterns shared by every class, a per-channel colour
  shift, and pixel noise,

clipped to [0, 1] and rounded to uint8. Clean accuracy then rises over epochs as the shapes are
learnt, and PGD at eps 8/255 breaks the texture, so robust accuracy stays below it (a test trains
a small CNN on it). The prototypes come from ``seed``; the training and test images are separate
draws. Everything is generated on the CPU from ``torch.Generator`` seeds, so the same seed gives
the same bits on every machine (a GPU's generator would draw other numbers), a chunk at a time.
"""

from __future__ import annotations

import functools
import math

import torch

NAME = "synthetic_cifar10"
CLASSES, CHANNELS, SIZE = 10, 3, 32
TRAIN, TEST = 50_000, 10_000
MODES = 8  # shape prototypes per class
NUISANCE = 16  # smooth patterns shared by every class
SHAPE_FREQ, TEXTURE_FREQ = 3, (10, 16)  # cycles per image: smooth shapes, fine textures
AMPLITUDE = dict(shape=0.11, nuisance=0.15, texture=4 / 255, colour=0.06, noise=0.08)
CHUNK = 5000
SEED = 0


def _smooth(gen: torch.Generator, count: int, max_freq: int) -> torch.Tensor:
    """``count`` random smooth colour patterns (C x S x S), each of unit standard deviation: sums of
    2-D cosines of up to ``max_freq`` cycles per image with random amplitudes and phases."""
    grid = torch.arange(SIZE, dtype=torch.float64) / SIZE
    freqs = [(fy, fx) for fy in range(max_freq + 1) for fx in range(max_freq + 1) if fy or fx]
    out = torch.zeros(count, CHANNELS, SIZE, SIZE, dtype=torch.float64)
    for fy, fx in freqs:
        amp = torch.randn(count, CHANNELS, 1, 1, generator=gen, dtype=torch.float64) / math.hypot(fy, fx)
        phase = 2 * math.pi * torch.rand(count, CHANNELS, 1, 1, generator=gen, dtype=torch.float64)
        wave = 2 * math.pi * (fy * grid[:, None] + fx * grid[None, :])
        out += amp * torch.cos(wave + phase)
    return out / out.flatten(1).std(dim=1).view(-1, 1, 1, 1)


def _textures(gen: torch.Generator) -> torch.Tensor:
    """One fixed high-frequency pattern per class (C x S x S), values +-1: the sign of a fine
    oriented grating with a class-specific frequency, orientation and colour."""
    grid = torch.arange(SIZE, dtype=torch.float64)
    out = torch.empty(CLASSES, CHANNELS, SIZE, SIZE, dtype=torch.float64)
    for c in range(CLASSES):
        freq = torch.empty(1, dtype=torch.float64).uniform_(*TEXTURE_FREQ, generator=gen) / SIZE
        angle = math.pi * c / CLASSES
        wave = 2 * math.pi * freq * (math.cos(angle) * grid[:, None] + math.sin(angle) * grid[None, :])
        colour = torch.sign(torch.randn(CHANNELS, generator=gen, dtype=torch.float64))
        out[c] = colour.view(-1, 1, 1) * torch.sign(torch.cos(wave))
    return out


@functools.lru_cache(maxsize=2)
def prototypes(seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(shapes: classes x modes x C x S x S, nuisance: NUISANCE x C x S x S, textures: classes x C x S x S)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = _smooth(gen, CLASSES * MODES, SHAPE_FREQ).view(CLASSES, MODES, CHANNELS, SIZE, SIZE)
    return shapes, _smooth(gen, NUISANCE, SHAPE_FREQ), _textures(gen)


def generate(n: int, seed: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (uint8, N x C x S x S) and labels (int64) with the prototypes of ``seed``, drawn
    from ``split_seed``; class counts are balanced (n / classes each, in a shuffled order)."""
    shapes, nuisance, textures = prototypes(seed)
    gen = torch.Generator().manual_seed(split_seed)
    y = torch.arange(n) % CLASSES
    y = y[torch.randperm(n, generator=gen)]
    x = torch.empty(n, CHANNELS, SIZE, SIZE, dtype=torch.uint8)
    a = AMPLITUDE
    flat_shapes, flat_nuisance = shapes.flatten(0, 1).flatten(1).float(), nuisance.flatten(1).float()
    flat_textures = textures.flatten(1).float()
    for start in range(0, n, CHUNK):
        yc = y[start : start + CHUNK]
        b = len(yc)
        mix = torch.randn(b, MODES, generator=gen).abs()
        mix = mix / mix.square().sum(1, keepdim=True).sqrt()  # unit-norm mixture: the shape keeps its size
        weights = torch.zeros(b, CLASSES, MODES).scatter_(1, yc.view(b, 1, 1).expand(b, 1, MODES), mix.unsqueeze(1))
        shape = (weights.flatten(1) @ flat_shapes).view(b, CHANNELS, SIZE, SIZE)  # its class's prototypes only
        clutter = (torch.randn(b, NUISANCE, generator=gen) / math.sqrt(NUISANCE)) @ flat_nuisance
        texture_amp = torch.rand(b, 1, 1, 1, generator=gen).add_(0.5).mul_(a["texture"])
        colour = torch.randn(b, CHANNELS, 1, 1, generator=gen).mul_(a["colour"]).add_(0.5)
        image = torch.randn(b, CHANNELS, SIZE, SIZE, generator=gen).mul_(a["noise"])  # pixel noise
        image.add_(shape, alpha=a["shape"]).add_(clutter.view(b, CHANNELS, SIZE, SIZE), alpha=a["nuisance"])
        image.addcmul_(flat_textures[yc].view(b, CHANNELS, SIZE, SIZE), texture_amp).add_(colour)
        x[start : start + b] = image.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return x, y


@functools.lru_cache(maxsize=1)
def _splits(seed: int):
    train = generate(TRAIN, seed, split_seed=2 * seed + 1)
    test = generate(TEST, seed, split_seed=2 * seed + 2)
    return (*train, *test)


def load_synthetic_cifar10(seed: int = SEED):
    """``((train_x, train_y, test_x, test_y), where)`` as the file readers return them; generated once
    per process (copies are handed out, so a caller may change them freely)."""
    return tuple(t.clone() for t in _splits(seed)), f"{NAME} (generated from seed {seed}, no files)"
