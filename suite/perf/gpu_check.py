"""``suite bench --gpu-check``: what this suite's GPU paths cost and whether they are right, in one command.

Meant to finish within about 8 minutes on one H100/H200 (:data:`PART_ESTIMATE_S`, the expected
seconds of each part), on a bare box with torch, numpy, pandas, yaml and tqdm (no W&B, Optuna,
submitit or AutoAttack: nothing here imports them). It asserts, for every method, that replaying
a captured CUDA graph trains as eager execution does (fp32, deterministic algorithms, a changing
learning rate, a few iterations: the same parameters within float tolerance), that runs packed
into one process train as they do alone, and that graph replays draw new random numbers. Then it
prints one table: each method's eager and graphed iteration time and their ratio to Fast-AT, its
aten operations per step, the reference transcriptions, peak memory, a Table-1 cell timed on
synthetic_cifar10 and the whole Table 1 extrapolated from it, the precision cosines of every
method at that cell's trained network and the policy they support, runs per GPU (processes and
packed, K = 1, 2, 4, 8) and the default they support, and the evaluation and data-pipeline ratios
of ``suite bench``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ..data import DATASETS
from ..engine.cuda_graphs import GraphedIteration
from ..engine.device import channels_last
from ..errors import SuiteError, warn
from ..eval import pgd_broken
from ..experiments.sharing import sharing_lines
from ..methods import get_method, resolve_hparams
from ..methods import precision as method_precision
from ..methods.perturbation import uniform_init
from ..models import build_model
from ..store import write_json
from .bench import op_count_line
from .cell import measure_cell, table1_estimate, table1_spec
from .evaluation import bench_eval, calibrate_eps
from .gpu_steps import ARCH, BATCH, DATASET, EPS, deterministic, synthetic_batch, trainable
from .iterations import op_counts, step_only
from .pipeline import bench_pipeline
from .precision import bench_precision, policy_lines
from .reference_impl import fast_at_ga_reference, fast_bat_reference
from .runs_per_gpu import packed_parity, runs_per_gpu
from .settings import METHOD_VARIANTS, Settings, resolve
from .timing import interleaved, medians, peak_memory, progress

PARITY = dict(batch=32, iterations=4, tolerance=1e-4)
EVAL_GRAPHS = dict(points=1000, steps=50, restarts=2)  # one batch of the Trainer's CUDA evaluation size
PRECISION_VARIANTS = ("bf16", "mixed")  # Fast-AT-GA also timed in these (its policy: fp32)
POLICY_SEEDS = 3

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
    batches = [synthetic_batch(batch, device, seed + i) for i in range(iterations)]
    with deterministic():

        def train(graphed: bool):
            torch.manual_seed(seed)
            model, optimizer, iteration = trainable(method, overrides or {}, device, lr=0.05, fp32=True)
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


def _eval_problem(points: int, seed: int = 0, device="cuda"):
    """A PGD problem that needs no training data: PreActResNet-18 at initialization, in eval mode, on
    random CIFAR-shaped points labelled with its own predictions, at the eps where PGD-10 breaks
    about half of them."""
    torch.manual_seed(seed)
    info = DATASETS[DATASET]
    model = build_model(ARCH, info.in_channels, info.num_classes, info.mean, info.std)
    model = channels_last(model.to(device)).eval()
    x, _ = synthetic_batch(points, torch.device(device), seed)
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
    model, _, _ = trainable(method, overrides or {}, torch.device("cuda"), lr=0.0)
    return [t.detach().float().clone() for t in model.state_dict().values() if t.is_floating_point()]


def replays_draw_new_random_numbers(generator: torch.Generator | None = None) -> bool:
    """Two replays of a graph that draws uniform numbers give different numbers (graph-safe philox),
    from torch's default CUDA generator or from ``generator`` (registered with the graph, as a
    packed run's)."""
    static = torch.empty(1024, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        static.uniform_(generator=generator)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    if generator is not None:
        graph.register_generator_state(generator)
    with torch.cuda.graph(graph, stream=side):
        static.uniform_(generator=generator)
    graph.replay()
    first = static.clone()
    graph.replay()
    return not torch.equal(first, static)


def random_replays() -> dict:
    return {
        "default": replays_draw_new_random_numbers(),
        "own_generator": replays_draw_new_random_numbers(torch.Generator(device="cuda").manual_seed(0)),
    }


# -- speed ----------------------------------------------------------------------------------


def iteration_times(reps: int, warmup: int) -> dict:
    """Eager and graphed training iterations of every method (training precision), the reference
    transcriptions (eager), and peak memory."""
    device = torch.device("cuda")
    x, y = synthetic_batch(BATCH, device)
    fns, graph_memory = {}, {}
    variants = [(name, method, overrides, None) for name, method, overrides in METHOD_VARIANTS]
    bat, ga = resolve_hparams("fast_bat", EPS), resolve_hparams("fast_at_ga", EPS)
    variants += [
        ("fast_bat_reference", "fast_bat", {"lmbda": bat["lmbda"], "ll_step": bat["ll_step"]}, fast_bat_reference),
        ("fast_at_ga_reference", "fast_at_ga", {"coef": ga["coef"]}, fast_at_ga_reference),
    ]
    variants += [(f"fast_at_ga_{p}", "fast_at_ga", {}, p) for p in PRECISION_VARIANTS]
    steps = {}
    for name, method, overrides, step in variants:
        precision = step if isinstance(step, str) else None  # a precision variant: graphed only
        step = None if precision else step
        if precision:
            model, optimizer, iteration = trainable(method, overrides, device, lr=0.0, precision=precision)
            runner = GraphedIteration(iteration, model, optimizer)
            runner(x, y)  # capture
            fns[f"{name}+graph"] = lambda runner=runner: runner(x, y)
            continue
        model, optimizer, iteration = trainable(method, overrides, device, lr=0.0, step=step)
        if step is None:
            hparams = resolve_hparams(method, EPS, overrides)
            steps[name] = step_only(
                get_method(method).step, model, x, y, EPS / 255, device, method_precision(method), hparams
            )

        def eager(optimizer=optimizer, iteration=iteration):
            optimizer.zero_grad(set_to_none=True)
            iteration(x, y)

        fns[name] = eager
        if step is None:
            model, optimizer, iteration = trainable(method, overrides, device, lr=0.0)
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
        "precision_variants_graph_s": {p: med[f"fast_at_ga_{p}+graph"] for p in PRECISION_VARIANTS},
        **op_counts(steps, names),
    }


# -- the trained network: a Table-1 cell ----------------------------------------------------


def trained_run(work: Path, cell: dict | None, data_dir, seed: int = 0, device="cuda", **overrides) -> dict:
    """The precision cosines of every method at the last checkpoint of the Table-1 cell's Fast-BAT
    run (PreActResNet-18 trained on synthetic_cifar10; a trained network, where precision matters:
    at initialization GradAlign's sampling noise is far smaller), at :data:`POLICY_SEEDS` seeds, and
    the precision policy they support. Without that cell (its part not run or failed) it trains
    the run itself (the cell's Fast-BAT run)."""
    run_dir = (cell or {}).get("fast_bat", {}).get("run_dir")
    trained = None
    if run_dir is None:
        trained = measure_cell(work, device, methods=("fast_bat",), **overrides)["fast_bat"]
        run_dir = trained["run_dir"]
    s, torch_device = resolve(
        Settings(
            device=device, precision_run=Path(run_dir), data_dir=Path(data_dir), seed=seed, precision_seeds=POLICY_SEEDS
        )
    )
    return {
        "run_dir": Path(run_dir).name,
        "trained_here": trained is not None,
        "precision": bench_precision(s, torch_device),
    }


PARTS = (
    "parity",
    "packed_parity",
    "random_replays",
    "eval_parity",
    "iterations",
    "table1_cell",
    "trained_run",
    "eval_graphs",
    "eval",
    "pipeline",
    "precision_init",
    "runs_per_gpu",
)
# Expected seconds of each part on one H100/H200, for the whole check's budget (about 8 minutes).
# Estimates from the H200 figures of docs/performance.md (iteration times) and the parts' sizes;
# the check prints the measured seconds beside them.
PART_ESTIMATE_S = {
    "parity": 30,  # 9 methods x (eager + graphed) x 4 iterations at batch 32, deterministic, captures
    "packed_parity": 10,  # 2 Fast-BAT runs x 4 iterations, alone and packed
    "random_replays": 2,
    "eval_parity": 5,
    "iterations": 40,  # 13 eager and 11 graphed variants x 12 rounds, captures, memory, op counts
    "table1_cell": 75,  # data (5), Fast-AT 3 epochs x 352 it x 5.3 ms, Fast-BAT x 18 ms, validation, PGD-50-10 on 1000
    "trained_run": 20,  # 7 methods x 3 seeds x 6 gradients at batch 64 (2 in float64)
    "eval_graphs": 12,  # PGD-50-2 on 1000 points, 4 rounds eager and graphed
    "eval": 20,
    "pipeline": 10,
    "precision_init": 8,
    "runs_per_gpu": 110,  # 4 process groups (spawn, CUDA start) + packed threads, 2 methods x 2 modes each
}


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
    work = tempfile.TemporaryDirectory(prefix="gpu_check_")  # the cell's runs, until the trained run is measured

    def pipeline():
        try:
            return bench_pipeline(s, device)
        except ImportError as err:  # the DataLoader side uses torchvision's transforms
            return {"skipped": f"needs torchvision ({err})"}

    measure = {
        "parity": lambda: [
            {"name": name, **graph_eager_parity(method, overrides)} for name, method, overrides in METHOD_VARIANTS
        ],
        "packed_parity": lambda: packed_parity("fast_bat"),
        "random_replays": random_replays,
        "eval_parity": lambda: [eval_graph_parity(early_exit) for early_exit in (False, True)],
        "iterations": lambda: iteration_times(reps=10, warmup=2),
        "table1_cell": lambda: measure_cell(Path(work.name)),
        "trained_run": lambda: trained_run(Path(work.name), out.get("table1_cell"), data_dir, seed),
        "eval_graphs": lambda: eval_times(reps=3, warmup=1),
        "eval": lambda: bench_eval(s, device),
        "pipeline": pipeline,
        "precision_init": lambda: bench_precision(s, device),
        "runs_per_gpu": runs_per_gpu,
    }
    with work:
        for part in [p for p in PARTS if p in parts]:
            progress(f"gpu-check: {part} (expected about {PART_ESTIMATE_S[part]} s)")
            begun = time.perf_counter()
            try:
                out[part] = measure[part]()
            except Exception as err:  # noqa: BLE001 - one broken part must not lose the others
                out["errors"][part] = f"{type(err).__name__}: {err}"
            out["seconds"][part] = time.perf_counter() - begun
            out["seconds"]["total"] = time.perf_counter() - started
            if "table1_cell" in out:
                try:
                    out["table1_estimate"] = table1_estimate(out["table1_cell"], out.get("iterations"), _table1_runs())
                except Exception as err:  # noqa: BLE001
                    out["errors"]["table1_estimate"] = f"{type(err).__name__}: {err}"
            out["failures"] = failures(out)
            if record is not None:
                try:
                    write_json(Path(record), out)
                except (OSError, TypeError, ValueError) as err:  # keep measuring; the table still prints
                    warn(f"could not write {record}: {err}")
    return out


def _table1_runs():
    return table1_spec().configs()


def failures(out: dict) -> list[str]:
    found = [f"{part}: {error}" for part, error in out["errors"].items()]
    for generator, fresh in out.get("random_replays", {}).items():
        if not fresh:
            found.append(f"graph replays drew the same random numbers ({generator.replace('_', ' ')})")
    p = out.get("packed_parity")
    if p and not p["max_rel_diff"] < PARITY["tolerance"]:
        found.append(f"runs packed into one process train differently from alone ({p['max_rel_diff']:.2e})")
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
        lines.append(
            "fast_at_ga graphed in other precisions (its policy: float32): "
            + ", ".join(
                f"{p} {1e3 * t:.2f} ms ({t / it['graph_s']['fast_at']:.2f}x Fast-AT)"
                for p, t in it.get("precision_variants_graph_s", {}).items()
            )
        )
        if "op_counts" in it:
            lines.append(
                op_count_line(it) + f"; graphed time Fast-BAT / Fast-AT {it['graph_over_fast_at']['fast_bat']:.2f}"
            )
    if "packed_parity" in r:
        p = r["packed_parity"]
        lines.append(
            f"{p['runs']} {p['method']} runs packed into one process vs alone (float32, deterministic, "
            f"graphs {p['cuda_graphs']}): max relative parameter difference {p['max_rel_diff']:.1e}"
        )
    if "random_replays" in r:
        lines.append(
            "random numbers differ between replays: "
            + ", ".join(f"{g.replace('_', ' ')} {'yes' if v else 'NO'}" for g, v in r["random_replays"].items())
        )
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
    lines += _cell_lines(r)
    if "trained_run" in r:
        t = r["trained_run"]
        lines.append(_precision_line(t["precision"]))
        lines += policy_lines(t["precision"]["policy"])
    if "precision_init" in r:
        lines.append(_precision_line(r["precision_init"]))
    if "runs_per_gpu" in r:
        for mode, shares in r["runs_per_gpu"].items():
            for share, by_method in shares.items():
                lines.append(
                    f"runs per GPU ({mode}, {share}), iterations/s summed over K runs relative to one: "
                    + "; ".join(
                        f"{m} " + ", ".join(f"K={k}: {v:.2f}" for k, v in t["over_one"].items())
                        for m, t in by_method.items()
                    )
                )
        lines += sharing_lines(r["runs_per_gpu"])
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
        "seconds per part (expected): "
        + ", ".join(f"{p} {r['seconds'][p]:.0f} ({PART_ESTIMATE_S[p]})" for p in PARTS if p in r["seconds"])
    )
    lines.append(
        "PASSED: graph replay trains and evaluates as eager execution"
        if not r["failures"]
        else "FAILED:\n  " + "\n  ".join(r["failures"])
    )
    return "\n".join(lines)


def _cell_lines(r: dict) -> list[str]:
    """The Table-1 cell timed on synthetic_cifar10, and Table 1 extrapolated from it."""
    cell = r.get("table1_cell")
    if not cell:
        return []
    lines = []
    for method in ("fast_at", "fast_bat"):
        if method not in cell:
            continue
        c = cell[method]
        lines.append(
            f"Table-1 cell {method} on synthetic_cifar10 ({c['config']['epochs']} of 20 epochs timed, "
            f"graphs {c['cuda_graphs']}): training {c['first_epoch_s']:.1f} s the first epoch, "
            f"{c['steady_epoch_s']:.1f} s/epoch after; validation and checkpoint {c['validation_s']:.1f} s/epoch; "
            f"final evaluation {c['final_evaluation_s']:.1f} s for {c['models_evaluated']} model(s) on "
            f"{c['test_points']} test points; {c['wall_s']:.0f} s in all; last SA/RA-PGD "
            f"{c['results']['last']['sa']:.1f}/{c['results']['last']['ra_pgd']:.1f}"
        )
    aa = cell.get("autoattack")
    if aa:
        lines.append(
            f"AutoAttack on {aa['points']} points, ESTIMATED (pyautoattack not here): {aa['seconds']:.0f} s from its "
            f"iteration counts x {1e6 * aa['per_point_s']['forward_backward']:.1f} us per point forward-backward and "
            f"{1e6 * aa['per_point_s']['forward']:.1f} us forward ({aa['estimate_from']})"
        )
    est = r.get("table1_estimate", {})
    for method, w in est.get("cell_s", {}).items():
        lines.append(
            f"one Table-1 cell, {method}, EXTRAPOLATED to 20 epochs and 10,000 test points: {w['wall_s'] / 60:.1f} min "
            f"(training {w['training_s']:.0f} s, validation {w['validation_s']:.0f} s, final evaluation "
            f"{w['final_evaluation_s']:.0f} s of two models with AutoAttack, setup {w['setup_s']:.0f} s)"
        )
    if est.get("hours") is not None:
        others = ", ".join(
            f"{k.removeprefix('hours_fast_at_ga_')} {v:.2f} h" for k, v in est.items() if k.startswith("hours_") and v
        )
        lines.append(
            f"whole Table 1 ({est['runs']} runs), EXTRAPOLATED from the cells and the graphed iteration times: "
            f"{est['hours']:.2f} H200-hours" + (f" (with Fast-AT-GA in {others})" if others else "")
        )
    elif est.get("missing"):
        lines.append(f"whole Table 1: not extrapolated (no graphed iteration time of {', '.join(est['missing'])})")
    return lines


def _precision_line(p: dict) -> str:
    """One line of :func:`suite.perf.precision.bench_precision`'s cosines."""
    return f"gradient cosine to float64 at {p['at']}, batch {p['batch']}: " + "; ".join(
        f"{m} " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()) for m, row in p["cosines"].items()
    )
