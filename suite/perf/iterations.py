"""The ``methods`` and ``reference`` sections of ``suite bench``: one training iteration of each method
(relative to standard training and to Fast-AT, with its peak memory and the layout ratio), the
error of Fast-BAT's finite-difference correction, and the suite's Fast-BAT and Fast-AT-GA against
the reference's transcriptions. The iteration mirrors the training loop: channels_last, and on
CUDA the method's precision."""

from __future__ import annotations

import copy
import math

import torch

from ..data import DATASETS
from ..engine.device import channels_last, training_autocast, uses_tf32
from ..methods import fast_bat, get_method, resolve_hparams
from ..methods import precision as method_precision
from ..methods.perturbation import uniform_init
from ..models import build_model
from .op_count import count_ops
from .precision import tf32
from .reference_impl import fast_at_ga_reference, fast_bat_reference
from .settings import LAYOUT_VARIANTS, Settings, method_variants
from .timing import interleaved, medians, peak_memory, progress


def bench_model(arch: str, info, device: torch.device):
    """A network in the training layout and an optimizer that does all of SGD's arithmetic at lr 0."""
    model = channels_last(build_model(arch, info.in_channels, info.num_classes, info.mean, info.std).to(device))
    # lr 0: the timed iterations do all the optimizer's arithmetic but leave the weights alone
    return model, torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=5e-4)


def bench_iterations(s: Settings, device: torch.device, with_methods: bool, with_reference: bool) -> dict:
    """The ``methods`` and ``reference`` sections, timed in one interleaved loop."""
    info = DATASETS[s.dataset]
    model, optimizer = bench_model(s.arch, info, device)
    x = channels_last(torch.rand(s.batch_size, info.in_channels, info.image_size, info.image_size).to(device))
    y = torch.randint(0, info.num_classes, (s.batch_size,), device=device)
    eps = s.eps / 255

    def iteration(step, precision="bf16", net=model, inputs=x, opt=optimizer, **hparams):
        def run():
            opt.zero_grad(set_to_none=True)
            with training_autocast(device, precision=precision), tf32(uses_tf32(precision)):
                step(net, inputs, y, eps, **hparams)
            opt.step()

        return run

    fns, steps = {}, {}
    every = method_variants(s)
    variants = every if with_methods else [v for v in every if v[0] in ("fast_bat", "fast_at_ga")]
    if with_methods:  # the layout the suite does not train in, for the layout ratio
        plain_model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
        plain_optimizer = torch.optim.SGD(plain_model.parameters(), lr=0.0, momentum=0.9, weight_decay=5e-4)
        plain_x = x.contiguous()
    for name, method, overrides in variants:
        hparams = resolve_hparams(method, s.eps, overrides)
        fns[name] = iteration(get_method(method).step, precision=method_precision(method), **hparams)
        steps[name] = step_only(get_method(method).step, model, x, y, eps, device, method_precision(method), hparams)
        if with_methods and name in LAYOUT_VARIANTS:
            fns[f"{name}_contiguous"] = iteration(
                get_method(method).step,
                precision=method_precision(method),
                net=plain_model,
                inputs=plain_x,
                opt=plain_optimizer,
                **hparams,
            )
    if with_reference:
        bat, ga = resolve_hparams("fast_bat", s.eps), resolve_hparams("fast_at_ga", s.eps)
        fns["fast_bat_reference"] = iteration(fast_bat_reference, lmbda=bat["lmbda"], ll_step=bat["ll_step"])
        fns["fast_at_ga_reference"] = iteration(fast_at_ga_reference, coef=ga["coef"])
    progress(f"timing {len(fns)} training iterations ({s.reps} rounds + {s.warmup} warm-up)")
    times = interleaved(fns, s.reps, s.warmup, device)
    med = medians(times)
    out = {}
    if with_methods:
        names = [v[0] for v in every]
        out["methods"] = {
            "seconds": {n: med[n] for n in names},
            "ratio_to_standard": {n: med[n] / med["standard"] for n in names},
            "ratio_to_fast_at": {n: med[n] / med["fast_at"] for n in names},
            "peak_memory_bytes": {n: peak_memory(fns[n], device) for n in names},
            "memory_measure": "cuda max_memory_allocated" if device.type == "cuda" else "rise of peak RSS",
            # > 1: channels_last (the suite's layout) is faster than the contiguous layout
            "contiguous_over_channels_last": {n: med[f"{n}_contiguous"] / med[n] for n in LAYOUT_VARIANTS},
            **op_counts(steps, names),
            **fd_error(s),
        }
    if with_reference:
        out["reference"] = {
            "seconds": {n: med[n] for n in ("fast_bat", "fast_bat_reference", "fast_at_ga", "fast_at_ga_reference")},
            "saving": {
                "fast_bat": med["fast_bat_reference"] / med["fast_bat"],
                "fast_at_ga": med["fast_at_ga_reference"] / med["fast_at_ga"],
            },
        }
    return out


def step_only(step, model, x, y, eps, device, precision, hparams):
    """One call of a method's step (forward and backward passes, no optimizer step), as it trains."""

    def run():
        model.zero_grad(set_to_none=True)
        with training_autocast(device, precision=precision), tf32(uses_tf32(precision)):
            step(model, x, y, eps, **hparams)

    return run


def op_counts(steps: dict, names) -> dict:
    """aten operations per training step of each method (:mod:`.op_count`, a proxy for kernel launches),
    and Fast-BAT's over Fast-AT's; the step runs once untimed before it is counted."""
    progress("counting the aten operations of each method's step")
    counts = {}
    for n in names:
        steps[n]()
        counts[n] = count_ops(steps[n])
    return {
        "op_counts": counts,
        "ops_over_fast_at": {kind: counts["fast_bat"][kind] / counts["fast_at"][kind] for kind in ("total", "kernels")},
    }


def fd_error(s: Settings) -> dict:
    """Relative error of Fast-BAT's finite-difference correction against the exact one.

    On a small CNN at initialization, synthetic Fashion-MNIST-shaped inputs, the default hyperparameters, the
    same linearization point z for both: the correction term is the exact step's gradient minus
    its gradient without correction (lambda = inf). Measured in float32 (the training precision
    on a CPU) and float64, with the correction's share of the whole gradient (norm ratio).
    """
    progress("measuring the finite-difference error")
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
