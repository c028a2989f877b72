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

import contextlib
import multiprocessing
import os
import time
from pathlib import Path

import torch

from ..data import DATASETS, load_splits
from ..engine.cuda_graphs import GraphedIteration, make_sgd
from ..engine.device import channels_last, training_autocast
from ..errors import SuiteError, warn
from ..eval import pgd_broken
from ..methods import get_method, resolve_hparams
from ..methods import precision as method_precision
from ..methods.perturbation import uniform_init
from ..models import build_model
from ..store import write_json
from .evaluation import bench_eval, calibrate_eps
from .pipeline import bench_pipeline
from .precision import bench_precision, tf32
from .reference_impl import fast_at_ga_reference, fast_bat_reference
from .settings import METHOD_VARIANTS, Settings, resolve
from .timing import interleaved, medians, peak_memory, progress

ARCH, DATASET, BATCH, EPS = "preact_resnet18", "cifar10", 128, 8.0
PARITY = dict(batch=32, iterations=4, tolerance=1e-4)
RUNS_PER_GPU = (1, 2, 4, 8)
THROUGHPUT_ITERS = 40
EVAL_GRAPHS = dict(points=1000, steps=50, restarts=2)  # one batch of the Trainer's CUDA evaluation size


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


def graph_eager_parity(
    method: str,
    overrides: dict | None = None,
    iterations: int = PARITY["iterations"],
    batch: int = PARITY["batch"],
    seed: int = 0,
) -> dict:
    """Train ``iterations`` steps eagerly and from a CUDA graph (fp32, deterministic algorithms, a
    learning rate that changes every step); the largest parameter difference relative to the
    parameter's largest entry."""
    device = torch.device("cuda")
    batches = [_batch(batch, device, seed + i) for i in range(iterations)]
    with deterministic():

        def train(graphed: bool):
            torch.manual_seed(seed)
            model, optimizer, iteration = _trainable(method, overrides or {}, device, lr=0.05, fp32=True)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
            runner = GraphedIteration(iteration, model, optimizer) if graphed else None
            torch.manual_seed(seed + 1)  # the steps' random draws
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
    diff = max(float((a - b).abs().max() / a.abs().max().clamp_min(1e-12)) for a, b in zip(eager, graphed))
    moved = max(float((a - b).abs().max()) for a, b in zip(eager, train_start(method, overrides, seed)))
    return {"method": method, "max_rel_diff": diff, "trained": moved > 0}


@contextlib.contextmanager
def deterministic():
    """Deterministic algorithms and no cuDNN autotuning: eager and graphed runs take the same kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]


def _eval_problem(points: int, seed: int = 0, device="cuda"):
    """A PGD problem that needs no training data: PreActResNet-18 at initialization, in eval mode, on
    random CIFAR-shaped points labelled with its own predictions, at the eps where PGD-10 breaks
    about half of them."""
    torch.manual_seed(seed)
    info = DATASETS[DATASET]
    model = build_model(ARCH, info.in_channels, info.num_classes, info.mean, info.std)
    model = channels_last(model.to(device)).eval()
    x, _ = _batch(points, torch.device(device), seed)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y, calibrate_eps(model, x, y)


def eval_graph_parity(
    early_exit: bool,
    points: int = 256,
    batch: int = 128,
    steps: int = 10,
    restarts: int = 2,
    seed: int = 0,
    device="cuda",
) -> dict:
    """PGD evaluation eagerly and with CUDA graphs, from the same random starts (deterministic
    algorithms): whether they break the same points."""
    model, x, y, eps = _eval_problem(points, seed, device)
    starts = torch.stack([uniform_init(x, eps) for _ in range(restarts)])
    with deterministic():
        eager, graphed = (
            pgd_broken(
                model,
                x,
                y,
                eps,
                steps,
                restarts,
                early_exit=early_exit,
                batch_size=batch,
                start=lambda idx, r: starts[r][idx],
                graphs=graphs,
            )
            for graphs in (False, True)
        )
    return {
        "early_exit": early_exit,
        "equal": torch.equal(eager, graphed),
        "broken": int(eager.sum()),
        "points": points,
    }


def eval_times(
    reps: int,
    warmup: int,
    points: int = EVAL_GRAPHS["points"],
    steps: int = EVAL_GRAPHS["steps"],
    restarts: int = EVAL_GRAPHS["restarts"],
) -> dict:
    """The full PGD attack (every point, restart and step) on one evaluation batch of PreActResNet-18,
    eagerly and with CUDA graphs (capture included, once per call as in an evaluation)."""
    model, x, y, eps = _eval_problem(points)
    fns = {
        mode: (
            lambda graphs=graphs: pgd_broken(
                model, x, y, eps, steps, restarts, early_exit=False, batch_size=points, graphs=graphs
            )
        )
        for mode, graphs in (("eager", False), ("graphs", True))
    }
    med = medians(interleaved(fns, reps, warmup, torch.device("cuda")))
    iterates = steps * restarts
    return {
        "attack": f"PGD-{steps}-{restarts}",
        "batch": points,
        "eps": 255 * eps,
        "ms_per_iterate": {m: 1e3 * t / iterates for m, t in med.items()},
        "speedup": med["eager"] / med["graphs"],
    }


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
    variants += [
        ("fast_bat_reference", "fast_bat", {"lmbda": bat["lmbda"], "ll_step": bat["ll_step"]}, fast_bat_reference),
        ("fast_at_ga_reference", "fast_at_ga", {"coef": ga["coef"]}, fast_at_ga_reference),
    ]
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
            runner(x, y)  # capture
            torch.cuda.synchronize()
            graph_memory[name] = torch.cuda.max_memory_allocated() - before
            fns[f"{name}+graph"] = lambda runner=runner: runner(x, y)
    med = medians(interleaved(fns, reps, warmup, device))
    names = [v[0] for v in METHOD_VARIANTS]
    return {
        "eager_s": {n: med[n] for n in names},
        "graph_s": {n: med[f"{n}+graph"] for n in names},
        "eager_over_fast_at": {n: med[n] / med["fast_at"] for n in names},
        "graph_over_fast_at": {n: med[f"{n}+graph"] / med["fast_at+graph"] for n in names},
        "speedup": {n: med[n] / med[f"{n}+graph"] for n in names},
        "reference_s": {n: med[f"{n}_reference"] for n in ("fast_bat", "fast_at_ga")},
        "reference_over_suite": {n: med[f"{n}_reference"] / med[n] for n in ("fast_bat", "fast_at_ga")},
        "peak_memory_eager": {n: peak_memory(fns[n], device) for n in names},
        "memory_graph_capture": graph_memory,
    }


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

TRAINED_RUN = dict(
    method="fast_bat", dataset="fashion_mnist", arch=ARCH, eps=EPS, epochs=3, test_points=1000, aa_points=0, co_points=0
)


def trained_run(data_dir, seed: int = 0, device="cuda", **overrides) -> dict:
    """A short real run on this GPU (the Trainer, its CUDA graphs and graphed evaluation, on
    Fashion-MNIST): its epoch and evaluation wall times, its results, and the precision cosines at
    its last checkpoint, where precision matters (a trained network; at initialization GradAlign's
    sampling noise is far smaller)."""
    import tempfile

    from ..config import RunConfig, RunOptions
    from ..engine import execute

    config = RunConfig(**{**TRAINED_RUN, **overrides}, seed=seed)
    try:
        load_splits(config.dataset, Path(data_dir), download=False)
    except SuiteError as err:
        return {"skipped": f"needs Fashion-MNIST (in --data-dir or the system's datasets): {err}"}
    with tempfile.TemporaryDirectory() as results:
        options = RunOptions(
            results_dir=Path(results),
            data_dir=Path(data_dir),
            device=device,
            download=False,
            progress=False,
            wandb="disabled",
        )
        started = time.perf_counter()
        summary = execute(config, options)
        wall = time.perf_counter() - started
        run_dir = Path(results) / "runs" / summary["run_id"]
        s, torch_device = resolve(Settings(device=device, precision_run=run_dir, data_dir=Path(data_dir), seed=seed))
        precision = bench_precision(s, torch_device)
    epochs = summary["epoch_seconds"] * config.epochs
    return {
        "config": {k: v for k, v in config.to_dict().items() if k in {*TRAINED_RUN, *overrides, "seed"}},
        "wall_s": wall,
        "epoch_s": summary["epoch_seconds"],
        "after_training_s": wall - epochs,
        "cuda_graphs": summary.get("cuda_graphs"),
        "results": {m: {k: summary[m][k] for k in ("sa", "ra_pgd")} for m in ("best", "last")},
        "precision": precision,
    }


PARTS = (
    "parity",
    "random_replays",
    "eval_parity",
    "iterations",
    "trained_run",
    "eval_graphs",
    "eval",
    "pipeline",
    "precision_init",
    "runs_per_gpu",
)


def run_gpu_check(data_dir="data", seed: int = 0, parts=PARTS, record: Path | None = None) -> dict:
    """Every part of the check, in order; a part that raises is recorded as failed and the next one
    runs. ``record``: a JSON file rewritten after each part (what a cut-off session keeps)."""
    if not torch.cuda.is_available():
        raise SuiteError("suite bench --gpu-check needs a CUDA GPU; none is visible here")
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SuiteError(f"unknown gpu-check part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    started = time.perf_counter()
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "seconds": {}, "errors": {}}
    s, device = resolve(
        Settings(
            device="cuda",
            reps=3,
            warmup=1,
            images=8192,
            eval_points=1000,
            eval_reps=2,
            data_dir=Path(data_dir),
            seed=seed,
        )
    )

    def pipeline():
        try:
            return bench_pipeline(s, device)
        except ImportError as err:  # the DataLoader side uses torchvision's transforms
            return {"skipped": f"needs torchvision ({err})"}

    measure = {
        "parity": lambda: [
            {"name": name, **graph_eager_parity(method, overrides)} for name, method, overrides in METHOD_VARIANTS
        ],
        "random_replays": replays_draw_new_random_numbers,
        "eval_parity": lambda: [eval_graph_parity(early_exit) for early_exit in (False, True)],
        "iterations": lambda: iteration_times(reps=10, warmup=2),
        "trained_run": lambda: trained_run(data_dir, seed),
        "eval_graphs": lambda: eval_times(reps=3, warmup=1),
        "eval": lambda: bench_eval(s, device),
        "pipeline": pipeline,
        "precision_init": lambda: bench_precision(s, device),
        "runs_per_gpu": lambda: {"eager": runs_per_gpu_throughput(False), "graphs": runs_per_gpu_throughput(True)},
    }
    for part in [p for p in PARTS if p in parts]:
        progress(f"gpu-check: {part}")
        begun = time.perf_counter()
        try:
            out[part] = measure[part]()
        except Exception as err:  # noqa: BLE001 - one broken part must not lose the others
            out["errors"][part] = f"{type(err).__name__}: {err}"
        out["seconds"][part] = time.perf_counter() - begun
        out["seconds"]["total"] = time.perf_counter() - started
        out["failures"] = failures(out)
        if record is not None:
            try:
                write_json(Path(record), out)
            except (OSError, TypeError, ValueError) as err:  # keep measuring; the table still prints
                warn(f"could not write {record}: {err}")
    return out


def failures(out: dict) -> list[str]:
    found = [f"{part}: {error}" for part, error in out["errors"].items()]
    if out.get("random_replays") is False:
        found.append("graph replays drew the same random numbers")
    for p in out.get("parity", []):
        if not p["max_rel_diff"] < PARITY["tolerance"] or not p["trained"]:
            found.append(f"{p['name']}: graph replay and eager execution differ by {p['max_rel_diff']:.2e}")
    found += [
        f"PGD evaluation ({'early exit' if p['early_exit'] else 'full attack'}): graph replay and eager "
        f"execution break different points"
        for p in out.get("eval_parity", [])
        if not p["equal"]
    ]
    return found


def format_gpu_check(r: dict) -> str:
    """The check's figures as one readable table; parts that were not run or failed say so."""
    lines = [
        f"suite bench --gpu-check on {r['device']}, torch {r['torch']} ({r['seconds'].get('total', 0):.0f} s); "
        f"{ARCH}, batch {BATCH}, eps {EPS:g}/255, training precision per method",
        "",
    ]
    it, parity = r.get("iterations"), {p["name"]: p for p in r.get("parity", [])}
    if it or parity:
        lines.append(
            f"{'method':<14}{'eager ms':>9}{'graph ms':>9}{'speedup':>8}{'eager/FAT':>10}{'graph/FAT':>10}"
            f"{'peak MiB':>9}{'graph MiB':>10}{'parity':>10}"
        )
        for name, _, _ in METHOD_VARIANTS:
            cells = [f"{name:<14}"]
            if it:
                mem, graph_mem = it["peak_memory_eager"][name], it["memory_graph_capture"][name]
                cells += [
                    f"{1e3 * it['eager_s'][name]:9.2f}",
                    f"{1e3 * it['graph_s'][name]:9.2f}",
                    f"{it['speedup'][name]:8.2f}",
                    f"{it['eager_over_fast_at'][name]:10.2f}",
                    f"{it['graph_over_fast_at'][name]:10.2f}",
                    f"{(mem or 0) / 2**20:9.0f}",
                    f"{graph_mem / 2**20:10.0f}",
                ]
            else:
                cells.append(f"{'(iteration times not run)':>63}")
            p = parity.get(name)
            cells.append(f"{p['max_rel_diff']:10.1e}" if p else f"{'-':>10}")
            lines.append("".join(cells))
    if it:
        for n in ("fast_bat", "fast_at_ga"):
            lines.append(
                f"{n + ' reference':<24} {1e3 * it['reference_s'][n]:.2f} ms eager, "
                f"{it['reference_over_suite'][n]:.2f}x the suite's eager step"
            )
    if "random_replays" in r:
        lines.append("random numbers differ between replays: " + ("yes" if r["random_replays"] else "NO"))
    if "eval_parity" in r:
        lines.append(
            "PGD evaluation, graphed vs eager from the same starts, same points broken: "
            + ", ".join(
                f"{'early exit' if p['early_exit'] else 'full attack'} "
                f"{'yes' if p['equal'] else 'NO'} ({p['broken']}/{p['points']} broken)"
                for p in r["eval_parity"]
            )
        )
    if "eval_graphs" in r:
        t = r["eval_graphs"]
        lines.append(
            f"PGD evaluation iterate ({t['attack']}, one batch of {t['batch']}, {ARCH}): "
            f"{t['ms_per_iterate']['eager']:.2f} ms eager, {t['ms_per_iterate']['graphs']:.2f} ms graphed "
            f"({t['speedup']:.2f}x, capture included)"
        )
    if "skipped" in r.get("trained_run", {}):
        lines.append(f"trained run: skipped ({r['trained_run']['skipped']})")
    elif "trained_run" in r:
        t = r["trained_run"]
        c = t["config"]
        lines.append(
            f"trained run ({c['method']}, {c['arch']}, {c['dataset']}, eps {c['eps']:g}, {c['epochs']} epochs, "
            f"graphs {t['cuda_graphs']}): {t['epoch_s']:.1f} s per epoch, {t['after_training_s']:.1f} s "
            f"of final evaluation (PGD-50-10 on {c['test_points']} test points, twice), {t['wall_s']:.0f} s "
            f"in all; best SA/RA {t['results']['best']['sa']:.1f}/{t['results']['best']['ra_pgd']:.1f}"
        )
        lines.append(_precision_line(t["precision"]))
    if "precision_init" in r:
        lines.append(_precision_line(r["precision_init"]))
    if "runs_per_gpu" in r:
        for mode, t in r["runs_per_gpu"].items():
            lines.append(
                f"runs per GPU ({mode}), Fast-AT iterations/s relative to one process: "
                + ", ".join(f"K={k}: {v:.2f}" for k, v in t["over_one"].items())
            )
    if "pipeline" in r:
        p = r["pipeline"]
        lines.append(
            "pipeline: "
            + (
                f"skipped ({p['skipped']})"
                if "skipped" in p
                else f"{p['compared_dataloader']} / device loader epoch: "
                f"{p['dataloader_over_device_loader']['train']:.2f} (training), "
                f"{p['dataloader_over_device_loader']['data']:.2f} (data only)"
            )
        )
    if "eval" in r:
        e = r["eval"]
        lines.append(
            "eval: "
            + (
                f"skipped ({e['skipped']})"
                if "skipped" in e
                else f"early-exit / full {e['attack']}: {e['cost_ratio']:.2f} in time, "
                f"{e['work_ratio']:.2f} in work; robust acc {e['robust_acc']['early_exit']:.1f} vs "
                f"{e['robust_acc']['full']:.1f}"
            )
        )
    not_run = [p for p in PARTS if p not in r and p not in r["errors"]]
    if not_run:
        lines.append("not run: " + ", ".join(not_run))
    lines.append(
        "PASSED: graph replay trains and evaluates as eager execution"
        if not r["failures"]
        else "FAILED:\n  " + "\n  ".join(r["failures"])
    )
    return "\n".join(lines)


def _precision_line(p: dict) -> str:
    """One line of :func:`suite.perf.precision.bench_precision`'s cosines."""
    return f"gradient cosine to float64 at {p['at']}, batch {p['batch']}: " + "; ".join(
        f"{m} " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()) for m, row in p["cosines"].items()
    )
