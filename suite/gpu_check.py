"""``suite bench --gpu-check``: what this suite's GPU paths cost and whether they are right, in one command.

Meant to finish in a few minutes on one GPU, on a bare box with torch, numpy, pandas, yaml and
tqdm (no W&B, Optuna, submitit or AutoAttack: nothing here imports them). It asserts, for every
method, that replaying a captured CUDA graph trains as eager execution does (fp32, deterministic
algorithms, a changing learning rate, a few iterations: the same parameters within float
tolerance), and that graph replays draw new random numbers. Then it prints one table: each
method's eager and graphed iteration time and their ratio to Fast-AT, the reference
transcriptions, peak memory, the throughput of K = 1, 2, 4, 8 training processes sharing the GPU,
the precision cosines, and the evaluation and data-pipeline ratios of ``suite bench``.
"""
from __future__ import annotations

import multiprocessing
import os
import time

import torch

from .bench import (METHOD_VARIANTS, Settings, bench_eval, bench_pipeline, interleaved, medians, peak_memory,
                    resolve)
from .cuda_graphs import GraphedIteration, make_sgd
from .data import DATASETS
from .errors import SuiteError
from .methods import get_method, resolve_hparams
from .methods import precision as method_precision
from .models import build_model
from .precision import gradient_cosines, tf32
from .reference_impl import fast_at_ga_reference, fast_bat_reference
from .train import channels_last, training_autocast

ARCH, DATASET, BATCH, EPS = "preact_resnet18", "cifar10", 128, 8.0
PARITY = dict(batch=32, iterations=4, tolerance=1e-4)
RUNS_PER_GPU = (1, 2, 4, 8)
THROUGHPUT_ITERS = 40


def _batch(batch: int, device, seed: int = 0):
    info = DATASETS[DATASET]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, info.in_channels, info.image_size, info.image_size, generator=g).to(device)
    return channels_last(x), torch.randint(0, info.num_classes, (batch,), generator=g).to(device)


def _trainable(method: str, overrides: dict, device, *, lr: float, fp32: bool = False, step=None):
    """(model, optimizer, iteration) of one method: the training loop's iteration, tensor learning rate."""
    info = DATASETS[DATASET]
    model = channels_last(build_model(ARCH, info.in_channels, info.num_classes, info.mean, info.std).to(device))
    optimizer = make_sgd(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, device=device, tensor_lr=True)
    hparams = resolve_hparams(method, EPS, overrides) if step is None else overrides
    step = step or get_method(method).step
    precision = "fp32" if fp32 else method_precision(method)

    def iteration(x, y):
        with training_autocast(device, cache_enabled=False, precision=precision), tf32(precision != "fp32"):
            out = step(model, x, y, EPS / 255, **hparams)
        optimizer.step()
        return out
    return model, optimizer, iteration


# -- correctness ----------------------------------------------------------------------------

def graph_eager_parity(method: str, overrides: dict | None = None, iterations: int = PARITY["iterations"],
                       batch: int = PARITY["batch"], seed: int = 0) -> dict:
    """Train ``iterations`` steps eagerly and from a CUDA graph (fp32, deterministic algorithms, a
    learning rate that changes every step); the largest parameter difference relative to the
    parameter's largest entry."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = torch.device("cuda")
    batches = [_batch(batch, device, seed + i) for i in range(iterations)]
    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        def train(graphed: bool):
            torch.manual_seed(seed)
            model, optimizer, iteration = _trainable(method, overrides or {}, device, lr=0.05, fp32=True)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
            runner = GraphedIteration(iteration, model, optimizer) if graphed else None
            torch.manual_seed(seed + 1)                     # the steps' random draws
            for x, y in batches:
                if runner is not None:
                    runner(x, y)
                else:
                    optimizer.zero_grad(set_to_none=True)
                    iteration(x, y)
                scheduler.step()
            torch.cuda.synchronize()
            return [t.detach().float().clone() for t in model.state_dict().values() if t.is_floating_point()]

        eager, graphed = train(False), train(True)
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
    diff = max(float((a - b).abs().max() / a.abs().max().clamp_min(1e-12)) for a, b in zip(eager, graphed))
    moved = max(float((a - b).abs().max()) for a, b in zip(eager, train_start(method, overrides, seed)))
    return {"method": method, "max_rel_diff": diff, "trained": moved > 0}


def train_start(method, overrides, seed):
    """The parameters before training (to check that training moved them at all)."""
    torch.manual_seed(seed)
    model, _, _ = _trainable(method, overrides or {}, torch.device("cuda"), lr=0.0)
    return [t.detach().float().clone() for t in model.state_dict().values() if t.is_floating_point()]


def replays_draw_new_random_numbers() -> bool:
    """Two replays of a graph that draws uniform numbers give different numbers (graph-safe philox)."""
    static = torch.empty(1024, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        static.uniform_()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static.uniform_()
    graph.replay()
    first = static.clone()
    graph.replay()
    return not torch.equal(first, static)


# -- speed ----------------------------------------------------------------------------------

def iteration_times(reps: int, warmup: int) -> dict:
    """Eager and graphed training iterations of every method (training precision), the reference
    transcriptions (eager), and peak memory."""
    device = torch.device("cuda")
    x, y = _batch(BATCH, device)
    fns, graph_memory = {}, {}
    variants = [(name, method, overrides, None) for name, method, overrides in METHOD_VARIANTS]
    bat, ga = resolve_hparams("fast_bat", EPS), resolve_hparams("fast_at_ga", EPS)
    variants += [("fast_bat_reference", "fast_bat", {"lmbda": bat["lmbda"], "ll_step": bat["ll_step"]},
                  fast_bat_reference),
                 ("fast_at_ga_reference", "fast_at_ga", {"coef": ga["coef"]}, fast_at_ga_reference)]
    for name, method, overrides, step in variants:
        model, optimizer, iteration = _trainable(method, overrides, device, lr=0.0, step=step)

        def eager(optimizer=optimizer, iteration=iteration):
            optimizer.zero_grad(set_to_none=True)
            iteration(x, y)
        fns[name] = eager
        if step is None:
            model, optimizer, iteration = _trainable(method, overrides, device, lr=0.0)
            runner = GraphedIteration(iteration, model, optimizer)
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            runner(x, y)                                     # capture
            torch.cuda.synchronize()
            graph_memory[name] = torch.cuda.max_memory_allocated() - before
            fns[f"{name}+graph"] = lambda runner=runner: runner(x, y)
    med = medians(interleaved(fns, reps, warmup, device))
    names = [v[0] for v in METHOD_VARIANTS]
    return {"eager_s": {n: med[n] for n in names}, "graph_s": {n: med[f"{n}+graph"] for n in names},
            "eager_over_fast_at": {n: med[n] / med["fast_at"] for n in names},
            "graph_over_fast_at": {n: med[f"{n}+graph"] / med["fast_at+graph"] for n in names},
            "speedup": {n: med[n] / med[f"{n}+graph"] for n in names},
            "reference_s": {n: med[f"{n}_reference"] for n in ("fast_bat", "fast_at_ga")},
            "reference_over_suite": {n: med[f"{n}_reference"] / med[n] for n in ("fast_bat", "fast_at_ga")},
            "peak_memory_eager": {n: peak_memory(fns[n], device) for n in names},
            "memory_graph_capture": graph_memory}


def _throughput_worker(barrier, results, graphs: bool, iters: int) -> None:
    device = torch.device("cuda")
    x, y = _batch(BATCH, device)
    model, optimizer, iteration = _trainable("fast_at", {}, device, lr=0.0)
    runner = GraphedIteration(iteration, model, optimizer) if graphs else None

    def run():
        if runner is not None:
            runner(x, y)
        else:
            optimizer.zero_grad(set_to_none=True)
            iteration(x, y)
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    barrier.wait()
    start = time.perf_counter()
    for _ in range(iters):
        run()
    torch.cuda.synchronize()
    results.put(iters / (time.perf_counter() - start))


def runs_per_gpu_throughput(graphs: bool, iters: int = THROUGHPUT_ITERS) -> dict:
    """Fast-AT iterations per second of K processes sharing this GPU, relative to one process."""
    ctx = multiprocessing.get_context("spawn")
    rates = {}
    for k in RUNS_PER_GPU:
        barrier, results = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_throughput_worker, args=(barrier, results, graphs, iters)) for _ in range(k)]
        for p in procs:
            p.start()
        rates[k] = sum(results.get(timeout=300) for _ in procs)
        for p in procs:
            p.join()
    return {"iters_per_s": rates, "over_one": {k: r / rates[1] for k, r in rates.items()}}


# -- the check ------------------------------------------------------------------------------

def run_gpu_check(data_dir="data", seed: int = 0) -> dict:
    if not torch.cuda.is_available():
        raise SuiteError("suite bench --gpu-check needs a CUDA GPU; none is visible here")
    started = time.perf_counter()
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    parity = [graph_eager_parity(method, overrides) for _, method, overrides in METHOD_VARIANTS]
    out["parity"] = parity
    out["random_replays_differ"] = replays_draw_new_random_numbers()
    out["iterations"] = iteration_times(reps=10, warmup=2)
    out["runs_per_gpu"] = {"eager": runs_per_gpu_throughput(False), "graphs": runs_per_gpu_throughput(True)}
    info = DATASETS[DATASET]
    model = build_model(ARCH, info.in_channels, info.num_classes, info.mean, info.std).cuda()
    x, y = _batch(64, torch.device("cuda"), seed)
    out["precision"] = gradient_cosines(model, x.contiguous(), y, EPS / 255, seed=seed)
    s, device = resolve(Settings(device="cuda", reps=3, warmup=1, images=8192, eval_points=1000, eval_reps=2,
                                 data_dir=data_dir, seed=seed))
    try:
        out["pipeline"] = bench_pipeline(s, device)
    except ImportError as err:                      # the DataLoader side uses torchvision's transforms
        out["pipeline"] = {"skipped": f"needs torchvision ({err})"}
    out["eval"] = bench_eval(s, device)
    out["seconds"] = time.perf_counter() - started
    failures = [f"{p['method']}: graph replay and eager differ by {p['max_rel_diff']:.2e}"
                for p in parity if not p["max_rel_diff"] < PARITY["tolerance"] or not p["trained"]]
    if not out["random_replays_differ"]:
        failures.append("graph replays drew the same random numbers")
    out["failures"] = failures
    return out


def format_gpu_check(r: dict) -> str:
    it = r["iterations"]
    lines = [f"suite bench --gpu-check on {r['device']}, torch {r['torch']} ({r['seconds']:.0f} s); {ARCH}, "
             f"batch {BATCH}, eps {EPS:g}/255, training precision per method",
             "",
             f"{'method':<14}{'eager ms':>9}{'graph ms':>9}{'speedup':>8}{'eager/FAT':>10}{'graph/FAT':>10}"
             f"{'peak MiB':>9}{'graph MiB':>10}{'parity':>10}"]
    for (name, method, _), p in zip(METHOD_VARIANTS, r["parity"]):
        mem = it["peak_memory_eager"][name]
        lines.append(f"{name:<14}{1e3 * it['eager_s'][name]:9.2f}{1e3 * it['graph_s'][name]:9.2f}"
                     f"{it['speedup'][name]:8.2f}{it['eager_over_fast_at'][name]:10.2f}"
                     f"{it['graph_over_fast_at'][name]:10.2f}{(mem or 0) / 2**20:9.0f}"
                     f"{it['memory_graph_capture'][name] / 2**20:10.0f}{p['max_rel_diff']:10.1e}")
    for n in ("fast_bat", "fast_at_ga"):
        lines.append(f"{n + ' reference':<24} {1e3 * it['reference_s'][n]:.2f} ms eager, "
                     f"{it['reference_over_suite'][n]:.2f}x the suite's eager step")
    for mode, t in r["runs_per_gpu"].items():
        lines.append(f"runs per GPU ({mode}), Fast-AT iterations/s relative to one process: "
                     + ", ".join(f"K={k}: {v:.2f}" for k, v in t["over_one"].items()))
    lines.append("gradient cosine to float64 (PreActResNet-18, batch 64, init): "
                 + "; ".join(f"{m} " + ", ".join(f"{k} {v:.4f}" for k, v in row.items())
                             for m, row in r["precision"].items()))
    p = r["pipeline"]
    lines.append("pipeline: " + (f"skipped ({p['skipped']})" if "skipped" in p else
                                 f"{p['compared_dataloader']} / device loader epoch: "
                                 f"{p['dataloader_over_device_loader']['train']:.2f} (training), "
                                 f"{p['dataloader_over_device_loader']['data']:.2f} (data only)"))
    e = r["eval"]
    lines.append("eval: " + (f"skipped ({e['skipped']})" if "skipped" in e else
                             f"early-exit / full {e['attack']}: {e['cost_ratio']:.2f} in time, {e['work_ratio']:.2f} "
                             f"in work; robust acc {e['robust_acc']['early_exit']:.1f} vs {e['robust_acc']['full']:.1f}"))
    lines.append("random numbers differ between replays: " + ("yes" if r["random_replays_differ"] else "NO"))
    lines.append("PASSED: graph replay trains as eager execution for every method" if not r["failures"]
                 else "FAILED:\n  " + "\n  ".join(r["failures"]))
    return "\n".join(lines)
