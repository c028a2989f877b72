"""Runs sharing one GPU, measured: K processes against K runs packed into one process, and their parity.

Throughput is the training iterations per second summed over the K runs, relative to one run
alone, for Fast-AT and Fast-BAT, with CUDA graphs and eagerly. Each run repeats the same batch
(the data pipeline is measured apart), so what is measured is how K iterations share the GPU.
:func:`suite.experiments.sharing.best_sharing` reads these figures.
"""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time

import torch

from ..engine.cuda_graphs import GraphedIteration
from ..engine.device import sync
from ..engine.packed import run_packed
from ..engine.rng import GLOBAL_RNG, run_generator
from .gpu_steps import BATCH, synthetic_batch, trainable

RUNS_PER_GPU = (1, 2, 4, 8)
SHARING_METHODS = ("fast_at", "fast_bat")
ITERATIONS = 48  # timed iterations per measurement, split among its K runs (at least MIN_ITERATIONS each)
MIN_ITERATIONS = 8
WARMUP = 3  # untimed iterations first (the CUDA graph's capture among them)
BARRIER_S = 600  # a run that fails before the timed loop breaks the others' wait instead of hanging it


def _runner(method: str, graphs: bool, device, batch: int, arch: str, generator=None):
    x, y = synthetic_batch(batch, device)
    model, optimizer, iteration = trainable(method, {}, device, lr=0.0, generator=generator, arch=arch)
    graphed = GraphedIteration(iteration, model, optimizer, generator=generator) if graphs else None

    def run():
        if graphed is not None:
            graphed(x, y)
        else:
            optimizer.zero_grad(set_to_none=True)
            iteration(x, y)

    return run


def _timed(run, iters: int, device, wait) -> float:
    for _ in range(WARMUP):
        run()
    sync(device)
    wait()
    start = time.perf_counter()
    for _ in range(iters):
        run()
    sync(device)
    return iters / (time.perf_counter() - start)


def _iterations(k: int) -> int:
    return max(MIN_ITERATIONS, ITERATIONS // k)


def _process_worker(barrier, results, k: int, modes, methods, batch: int, arch: str) -> None:
    device = torch.device("cuda")
    for graphs in modes:
        for method in methods:
            run = _runner(method, graphs, device, batch, arch)
            results.put((graphs, method, _timed(run, _iterations(k), device, lambda: barrier.wait(BARRIER_S))))


def processes_throughput(
    ks=RUNS_PER_GPU, modes=(True, False), methods=SHARING_METHODS, batch=BATCH, arch="preact_resnet18"
):
    """Iterations per second of K spawned processes (one run each) sharing this GPU."""
    ctx = multiprocessing.get_context("spawn")
    rates = {graphs: {m: {} for m in methods} for graphs in modes}
    for k in ks:
        barrier, results = ctx.Barrier(k), ctx.Queue()
        procs = [
            ctx.Process(target=_process_worker, args=(barrier, results, k, modes, methods, batch, arch))
            for _ in range(k)
        ]
        for p in procs:
            p.start()
        for _ in range(k * len(modes) * len(methods)):
            graphs, method, rate = results.get(timeout=600)
            rates[graphs][method][k] = rates[graphs][method].get(k, 0.0) + rate
        for p in procs:
            p.join()
    return rates


def _packed_task(barrier, method, graphs, iters, device, batch, arch):
    with GLOBAL_RNG:  # the model's initialisation draws from the global generator
        torch.manual_seed(0)
        run = _runner(method, graphs, device, batch, arch, generator=run_generator(device))
    return _timed(run, iters, device, lambda: barrier.wait(BARRIER_S))


def packed_throughput(
    ks=RUNS_PER_GPU, modes=(True, False), methods=SHARING_METHODS, batch=BATCH, arch="preact_resnet18", device="cuda"
):
    """Iterations per second of K runs packed into this process (``suite.engine.packed``)."""
    device = torch.device(device)
    rates = {graphs: {m: {} for m in methods} for graphs in modes}
    for k in ks:
        for graphs in modes:
            for method in methods:
                barrier = threading.Barrier(k)
                task = functools.partial(_packed_task, barrier, method, graphs, _iterations(k), device, batch, arch)
                outcomes = run_packed([task] * k, device)
                for o in outcomes:
                    if isinstance(o, BaseException):
                        raise o
                rates[graphs][method][k] = sum(outcomes)
    return rates


def relative(rates: dict) -> dict:
    """``{"graphs" | "eager": {method: {"iters_per_s": {K: rate}, "over_one": {K: rate / rate at K=1}}}}``."""
    out = {}
    for graphs, by_method in rates.items():
        out["graphs" if graphs else "eager"] = {
            m: {"iters_per_s": r, "over_one": {k: v / r[min(r)] for k, v in r.items()}} for m, r in by_method.items()
        }
    return out


def runs_per_gpu(ks=RUNS_PER_GPU) -> dict:
    """The ``runs_per_gpu`` part: ``{"graphs" | "eager": {share: {method: {...}}}}`` (the shape
    ``suite.experiments.sharing.best_sharing`` reads)."""
    measured = {"processes": relative(processes_throughput(ks)), "packed": relative(packed_throughput(ks))}
    return {mode: {share: measured[share][mode] for share in measured} for mode in ("graphs", "eager")}


def packed_parity(
    method: str = "fast_bat", k: int = 2, iterations: int = 4, batch: int = 32, device="cuda", arch="preact_resnet18"
) -> dict:
    """K runs trained alone one after another (torch's global generator, as a run alone draws) and packed
    into one process (each its own generator and stream), from the same seeds, deterministic
    algorithms, CUDA graphs on CUDA: the largest parameter difference relative to the parameter's
    largest entry (0 when packing changes nothing)."""
    from .gpu_steps import deterministic

    device = torch.device(device)
    graphs = device.type == "cuda"
    batches = [synthetic_batch(batch, device, seed=i) for i in range(iterations)]

    def train(seed: int, packed: bool):
        with GLOBAL_RNG:
            torch.manual_seed(seed)
            generator = run_generator(device) if packed else None
            model, optimizer, iteration = trainable(
                method, {}, device, lr=0.05, fp32=True, generator=generator, arch=arch
            )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
        graphed = GraphedIteration(iteration, model, optimizer, generator=generator) if graphs else None
        if generator is not None:
            generator.manual_seed(seed + 1000)
        else:
            with GLOBAL_RNG:
                torch.manual_seed(seed + 1000)
        for x, y in batches:
            if graphed is not None:
                graphed(x, y)
            else:
                optimizer.zero_grad(set_to_none=True)
                iteration(x, y)
            scheduler.step()
        sync(device)
        return [t.detach().float().clone() for t in model.state_dict().values() if t.is_floating_point()]

    with deterministic():
        alone = [train(seed, packed=False) for seed in range(k)]
        packed = run_packed([functools.partial(train, seed, True) for seed in range(k)], device)
    for result in packed:
        if isinstance(result, BaseException):
            raise result
    diff = max(
        float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
        for run_alone, run_packed_ in zip(alone, packed)
        for a, b in zip(run_alone, run_packed_)
    )
    return {"method": method, "runs": k, "max_rel_diff": diff, "cuda_graphs": graphs}
