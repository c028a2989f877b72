"""Sweeps: a grid of run configurations from a YAML spec, launched through submitit.

A spec (``sweeps/*.yaml``)::

    name: table1                  # the W&B group and the folder <results>/sweeps/<name>/
    description: free text
    base:                         # RunConfig fields, method hyperparameters as flat keys
      dataset: cifar10
      epochs: 20
      lmbda: 10                   # applied to the runs whose method has a 'lmbda'
    grid:                         # lists; the runs are their cartesian product
      method: [fast_at, fast_bat]
      eps: [8, 16]
      seeds: 10                   # 'seeds': a list, or a count N meaning 0..N-1
    overrides:                    # per-cell changes, applied in order to the matching cells
      - when: {method: fast_bat, eps: 16}
        set: {ll_step: 2000}

Command-line ``--set key=value`` (YAML-parsed) replaces a grid axis when the key is one
(``--set eps=[8]``, ``--set seeds=2``) or when the value is a list; otherwise it pins the
key for every run, over the base and the overrides. A value ``best:<study spec>`` takes that
key from the best trial of a tuning study (``suite.tune.best_params``); for a study that ties
``ll_step`` to ``lmbda``, take both: ``--set lmbda=best:S --set ll_step=best:S``.

Everything is checked before anything starts; a bad key or value is reported with its line.

``run_sweep`` skips finished runs and hands the others to submitit: ``local`` (one process
per run, ``workers`` at a time, one GPU each when there are GPUs) or ``slurm`` (one job
array). The engine's per-run lock makes relaunching safe: a run trained by another
process at the same moment is reported as skipped, never trained twice at once.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import json
import os
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .callbacks import Callback
from .config import LR_SCHEDULES, RunConfig, RunOptions
from .errors import SuiteError
from .settings import canonical, parse_setting, split_settings

TOP_KEYS = ("name", "description", "base", "grid", "overrides")
FIELDS = {f.name: f for f in dataclasses.fields(RunConfig) if f.name != "hparams"}
LOCAL_TIMEOUT_MIN = 7 * 24 * 60      # submitit's local default (2 minutes) would kill real runs
POLL_S = {"local": 0.5, "slurm": 10.0}


def method_hparams() -> dict[str, set[str]]:
    """Each method's hyperparameter names."""
    from .methods import METHODS
    return {name: set(module.defaults(8.0)) for name, module in METHODS.items()}


@functools.lru_cache(maxsize=None)
def hparam_defaults() -> dict:
    """Every method hyperparameter's default (at eps 8), by name."""
    from .methods import METHODS
    return {k: v for module in METHODS.values() for k, v in module.defaults(8.0).items()}


def hparam_kind(key: str) -> str:
    """A hyperparameter's type, from its default: int, str, or a number (float; None: derived)."""
    default = hparam_defaults().get(key)
    return {int: "int", str: "str"}.get(type(default), "float | None")


def valid_keys() -> list[str]:
    return sorted(set(FIELDS) | set(hparam_defaults()))


# -- the spec --------------------------------------------------------------------------------

@dataclass
class SweepSpec:
    """A loaded, validated sweep: ``configs()`` lists its resolved run configurations."""
    name: str
    path: Path
    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)          # key -> list of values
    overrides: list = field(default_factory=list)     # [(when dict, set dict)]
    pinned: dict = field(default_factory=dict)        # --set values that win over everything
    description: str = ""

    def cells(self) -> list[dict]:
        """The flat settings of every grid cell, overrides and pinned values applied."""
        cells = []
        for values in itertools.product(*self.grid.values()):
            cell = {**self.base, **dict(zip(self.grid, values))}
            for when, changes in self.overrides:
                if all(cell.get(k, _default(k)) == v for k, v in when.items()):
                    cell.update(changes)
            cell.update(self.pinned)
            cells.append(cell)
        return cells

    def configs(self) -> list[RunConfig]:
        """The resolved run configurations, in grid order, duplicates removed."""
        return self._expand()[0]

    def _expand(self) -> tuple[list[RunConfig], set[str]]:
        """The configurations and the hyperparameter keys that reached at least one run."""
        hparams_of = method_hparams()
        configs, used = {}, set()
        for cell in self.cells():
            fields, hparams = split_settings(cell)
            own = hparams_of.get(fields.get("method", RunConfig.method), set())
            hparams = {k: v for k, v in hparams.items() if k in own}
            used |= set(hparams)
            try:
                config = RunConfig(**fields, hparams=hparams).resolved()
            except SuiteError as err:
                shown = ", ".join(f"{k}={v}" for k, v in cell.items() if k in self.grid)
                raise SuiteError(f"{self.path}: run ({shown}): {err}") from None
            configs.setdefault(config.run_id, config)
        return list(configs.values()), used


def _default(key):
    return FIELDS[key].default if key in FIELDS else None


def _line_map(node, prefix=(), lines=None) -> dict:
    """``{("grid", "eps", 1): line}`` for every key and item of a composed YAML document (1-based)."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (key.value,)
            lines[path] = key.start_mark.line + 1
            _line_map(value, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (i,)] = item.start_mark.line + 1
            _line_map(item, prefix + (i,), lines)
    return lines


class _Checker:
    """Raises SuiteError naming the file and line (or the --set flag) of a bad key or value."""

    def __init__(self, path: Path, lines: dict):
        self.path, self.lines = path, lines

    def where(self, loc) -> str:
        if isinstance(loc, str):                       # a --set flag
            return loc
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return f"{self.path} line {self.lines[loc]}" if loc else str(self.path)

    def fail(self, loc, message: str):
        raise SuiteError(f"{self.where(loc)}: {message}")

    def key(self, key, loc, extra=()):
        known = valid_keys() + list(extra)
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            more = (f" (did you mean {hint[0]!r}?)" if hint else "") + \
                ("; write method hyperparameters as flat keys" if key == "hparams" else "")
            self.fail(loc, f"unknown key {key!r}{more}")

    def value(self, key, value, loc):
        from .data import DATASETS
        from .methods import METHODS
        from .models import ARCHS

        choices = {"method": METHODS, "arch": ARCHS, "dataset": DATASETS, "lr_schedule": LR_SCHEDULES}.get(key)
        if choices is not None:
            if value not in choices:
                hint = difflib.get_close_matches(str(value), list(choices), n=1)
                self.fail(loc, f"unknown {key} {value!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                          + f"; choose one of: {', '.join(choices)}")
            return
        kind = FIELDS[key].type if key in FIELDS else hparam_kind(key)
        ok = (value is None and "None" in kind) or \
            (not isinstance(value, bool) and (("int" in kind and isinstance(value, int)) or
                                              ("float" in kind and isinstance(value, (int, float))) or
                                              ("str" in kind and isinstance(value, str))))
        if not ok:
            self.fail(loc, f"{key} must be {kind.replace(' | None', ' or null')}, got {value!r}")


def _resolve_best(key, value, results_dir=None):
    """``best:<study spec>`` -> that key's value in the tuning study's best trial."""
    if not (isinstance(value, str) and value.startswith("best:")):
        return value
    from .tune import best_params          # imported only when asked for

    study = value[len("best:"):].strip()
    params = best_params(study) if results_dir is None else best_params(study, results_dir=Path(results_dir))
    if key not in params:
        raise SuiteError(f"{key}=best:{study}: the study's best trial has no {key!r}; it has: {', '.join(params)}")
    return params[key]


def _axis(key, value, loc, check: _Checker) -> list:
    """A grid axis as a list; ``seeds: N`` means seeds 0..N-1."""
    if key == "seeds" and isinstance(value, int) and not isinstance(value, bool):
        return list(range(value))
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        check.fail(loc, f"grid axis {key!r} has no values")
    return values


def load_spec(path, overrides: list[str] = (), *, results_dir=None) -> SweepSpec:
    """Read, validate and expand a sweep spec; ``overrides`` are ``key=value`` strings (``--set``).

    ``results_dir``: where tuning studies named by ``best:<study spec>`` values live
    (default: suite.tune's default).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SuiteError(f"cannot read sweep spec {path}: {err.strerror}") from None
    try:
        lines = _line_map(yaml.compose(text))
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SuiteError(f"{path} is not valid YAML: {err}") from None
    check = _Checker(path, lines)
    if not isinstance(data, dict):
        check.fail((), "a sweep spec is a mapping with keys " + ", ".join(TOP_KEYS))
    for key in data:
        if key not in TOP_KEYS:
            hint = difflib.get_close_matches(str(key), TOP_KEYS, n=1)
            check.fail((key,), f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                       + f"; a spec has: {', '.join(TOP_KEYS)}")
    name = data.get("name") or path.stem
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        check.fail(("name",), f"name must be letters, digits, - and _, got {name!r}")

    def section(key, kind):
        value = data.get(key) or kind()
        if not isinstance(value, kind):
            check.fail((key,), f"{key} must be a {'mapping' if kind is dict else 'list'}")
        return value

    def entry(key, value, loc):
        value = _resolve_best(key, value, results_dir)
        check.value(key, value, loc)
        return value

    base = {}
    for key, value in section("base", dict).items():
        key = canonical(key, check.where(("base", key)))
        check.key(key, ("base", key))
        base[key] = entry(key, value, ("base", key))
    grid = {}
    for key, value in section("grid", dict).items():
        key = canonical(key, check.where(("grid", key)))
        check.key(key, ("grid", key), ("seeds",))
        axis = "seed" if key == "seeds" else key
        grid[axis] = [entry(axis, v, ("grid", key, i)) for i, v in enumerate(_axis(key, value, ("grid", key), check))]
    rules = []
    for i, rule in enumerate(section("overrides", list)):
        if not isinstance(rule, dict) or set(rule) - {"when", "set"} or not isinstance(rule.get("set"), dict) \
                or not isinstance(rule.get("when", {}), dict):
            check.fail(("overrides", i), "an override is {when: {key: value, ...}, set: {key: value, ...}}")
        for part in ("when", "set"):
            rule[part] = {canonical(k, check.where(("overrides", i, part, k))): v
                          for k, v in (rule.get(part) or {}).items()}
            for k in rule[part]:
                check.key(k, ("overrides", i, part, k))
        rules.append(tuple({k: entry(k, v, ("overrides", i, part, k)) for k, v in rule[part].items()}
                           for part in ("when", "set")))

    pinned = {}
    for item in overrides:
        flag = f"--set {item}"
        key, value = parse_setting(item)
        check.key(key, flag, ("seeds",))
        if key == "seeds" or key in grid or isinstance(value, (list, tuple)):
            axis = "seed" if key == "seeds" else key
            grid[axis] = [entry(axis, v, flag) for v in _axis(key, value, flag, check)]
            pinned.pop(axis, None)
        else:
            pinned[key] = entry(key, value, flag)

    spec = SweepSpec(name=name, path=path, base=base, grid=grid, overrides=rules, pinned=pinned,
                     description=str(data.get("description") or "").strip())
    _, used = spec._expand()                 # every run must resolve before anything starts
    present = set().union(*spec.cells())
    places = [(k, ("base", k)) for k in base] + [(k, ("grid", k)) for k in grid] + \
        [(k, ("overrides", i, "set", k)) for i, (_, changes) in enumerate(rules) for k in changes] + \
        [(k, f"--set {k}=...") for k in pinned]
    for key, loc in places:                  # a hyperparameter that reaches no run is a mistake
        if key not in FIELDS and key != "seed" and key in present and key not in used:
            check.fail(loc, f"{key!r} is a hyperparameter of no method it is applied to in this sweep")
    return spec


# -- running it ------------------------------------------------------------------------------

@dataclass
class SweepResult:
    """``done``: run ids trained to completion now; ``skipped`` and ``failed``: (run id, reason)."""
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    submitted: list = field(default_factory=list)      # job ids, when not waiting for them

    def add(self, run_id: str, outcome: dict) -> None:
        status = outcome["status"]
        if status == "done":
            self.done.append(run_id)
        else:
            getattr(self, status).append((run_id, outcome["reason"]))

    def report(self) -> str:
        reasons = {}
        for _, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        detail = f" ({', '.join(f'{n} {r}' for r, n in reasons.items())})" if reasons else ""
        text = f"{len(self.done)} done, {len(self.skipped)} skipped{detail}, {len(self.failed)} failed"
        if self.submitted:
            text += f", {len(self.submitted)} submitted (not waited for)"
        return text + "".join(f"\n  failed {run_id}: {error}" for run_id, error in self.failed)


class Journal(Callback):
    """Appends one line per training start and end to ``<results>/sweeps/<name>/journal.jsonl``."""

    def __init__(self, path: Path):
        self.path, self.run_id = Path(path), None

    def write(self, event: str, **extra) -> None:
        line = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run_id": self.run_id,
                "event": event, "host": socket.gethostname(), "pid": os.getpid(), **extra}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:           # one short O_APPEND write: lines never interleave
            handle.write(json.dumps(line) + "\n")

    def on_start(self, run, config, record) -> None:
        self.run_id = run.run_id
        self.write("start", epochs_done=record.get("epochs_done", 0))

    def on_end(self, record) -> None:
        self.write(record.get("status", "unknown"), error=record.get("error"))


def sweep_dir(options: RunOptions, name: str) -> Path:
    return Path(options.results_dir) / "sweeps" / name


def train_cell(config: RunConfig, options: RunOptions, sweep: str, threads: int | None = None) -> dict:
    """The job function: train one run; returns {"status": done | skipped | failed, "reason": ...}.

    The W&B group is the sweep's name (unless ``options.wandb_group`` says otherwise). Never
    raises for a failed run, so one failure never stops the sweep; the traceback goes to the
    job's log and to the run's ``error.txt``.
    """
    from .records import RunDir, RunLocked
    from .tracking import trackers
    from .train import execute

    if threads:
        import torch
        torch.set_num_threads(threads)
    if RunDir(options.results_dir, config.run_id).is_finished() and not options.force:
        return {"status": "skipped", "reason": "finished"}
    journal = Journal(sweep_dir(options, sweep) / "journal.jsonl")
    try:
        tracking = trackers(options, group=options.wandb_group or sweep, tags=(f"sweep:{sweep}",),
                            job_type="train", extra_config={"sweep": sweep})
        summary = execute(config, options, [journal, *tracking])
    except RunLocked:
        return {"status": "skipped", "reason": "running elsewhere"}
    except Exception as err:  # noqa: BLE001  (any failure of one run is reported, not raised)
        traceback.print_exc()
        return {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
    if journal.run_id is None:            # never started: another process finished it meanwhile
        return {"status": "skipped", "reason": "finished"}
    if summary.get("status") != "finished":
        return {"status": "failed", "reason": summary.get("error") or f"status {summary.get('status')}"}
    return {"status": "done", "reason": None}


def train_cells(configs: list[RunConfig], options: RunOptions, sweep: str, threads: int | None = None) -> list[dict]:
    """A Slurm array task's job: train ``configs`` concurrently on its GPU, one process each.

    Each cell is :func:`train_cell` in its own process (spawned: CUDA does not survive a fork),
    so one crashing cell (even a segfault) fails only itself. One config runs in this process.
    """
    if len(configs) == 1:
        return [train_cell(configs[0], options, sweep, threads)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    per_cell = max(1, threads // len(configs)) if threads else None
    outcomes = []
    for config in configs:   # a pool per cell: a crash breaks its own pool, never the other cells'
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        outcomes.append((pool, pool.submit(train_cell, config, options, sweep, per_cell)))
    results = []
    for pool, future in outcomes:
        try:
            results.append(future.result())
        except Exception as err:  # noqa: BLE001  (the cell's process died)
            results.append({"status": "failed", "reason": f"the run's process died: {type(err).__name__}: {err}"})
        pool.shutdown()
    return results


def default_runs_per_gpu(on_gpu: bool, cuda_graphs: bool) -> int:
    """Runs sharing one GPU. An eager iteration is host-bound: on an H200 four processes reached 3.8x
    the iterations per second of one. A graphed iteration already keeps the GPU busy: K = 2, 4, 8
    graphed Fast-AT processes summed to 0.94x of one (``suite bench --gpu-check`` measures K = 1..8)."""
    return 1 if not on_gpu or cuda_graphs else 4


def visible_gpus() -> list[int]:
    """The GPU indices this process may use (honouring an integer CUDA_VISIBLE_DEVICES)."""
    import torch

    if not torch.cuda.is_available():
        return []
    mask = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    if all(part.strip().isdigit() for part in mask) and len(mask) == torch.cuda.device_count():
        return [int(part) for part in mask]
    return list(range(torch.cuda.device_count()))


def run_sweep(spec: SweepSpec, options: RunOptions, *, executor: str = "local", workers: int | None = None,
              slurm: dict | None = None, dry_run: bool = False, wait: bool = True, out=None,
              runs_per_gpu: int | None = None) -> SweepResult:
    """Launch the sweep's unfinished runs and (unless ``wait=False``) wait for them.

    ``workers``: local processes at a time (default: ``runs_per_gpu`` per visible GPU, else 1).
    ``runs_per_gpu``: runs sharing each GPU (default :func:`default_runs_per_gpu`); on Slurm,
    the grid cells each array task trains concurrently on its GPU(s).
    ``slurm``: submitit SlurmExecutor parameters (partition, time in minutes, gpus_per_node,
    cpus_per_task, array_parallelism, mem, account, qos, ...).
    """
    from .records import RunDir

    out = out or sys.stdout
    if executor not in ("local", "slurm"):
        raise SuiteError(f"unknown executor {executor!r}; use local or slurm")
    result, todo = SweepResult(), []
    configs = spec.configs()
    for config in configs:
        if RunDir(options.results_dir, config.run_id).is_finished() and not options.force:
            result.add(config.run_id, {"status": "skipped", "reason": "finished"})
        else:
            todo.append(config)
    print(f"sweep {spec.name}: {len(configs)} runs, {len(configs) - len(todo)} finished, {len(todo)} to run",
          file=out, flush=True)
    if dry_run:
        for config in configs:
            status = (RunDir(options.results_dir, config.run_id).read_summary() or {}).get("status")
            state = "done" if status == "finished" else f"to run (last: {status})" if status else "to run"
            print(f"  {config.run_id:60s} {state}", file=out)
        return result
    if not todo:
        return result
    from .prefetch import ensure_datasets

    ensure_datasets(todo, options.data_dir, options.download)     # here, once, before any job starts
    import submitit

    # jobs may start elsewhere (a Slurm node, another working directory): give them absolute paths
    options = dataclasses.replace(options, results_dir=Path(options.results_dir).resolve(),
                                  data_dir=Path(options.data_dir).resolve())
    folder = sweep_dir(options, spec.name) / "submitit"
    if executor == "local":
        gpus = [] if options.device == "cpu" else visible_gpus()
        per_gpu = runs_per_gpu or default_runs_per_gpu(bool(gpus), options.cuda_graphs)
        workers = workers or max(1, len(gpus) * per_gpu)
        threads = None if gpus else max(1, (os.cpu_count() or 1) // workers)
        pool = submitit.LocalExecutor(folder=folder)
        pool.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        _run_local(pool, todo, options, spec.name, workers, gpus, threads, result)
    else:
        params = {"job_name": f"sweep-{spec.name}", "nodes": 1, "ntasks_per_node": 1, **(slurm or {})}
        try:
            array = submitit.SlurmExecutor(folder=folder)
        except RuntimeError as err:       # no srun on PATH
            raise SuiteError(f"--executor slurm needs the Slurm commands on PATH ({err})") from None
        try:
            array.update_parameters(**params)
        except ValueError as err:
            first = str(err).splitlines()[0]
            raise SuiteError(f"bad Slurm parameter: {first} (see submitit's SlurmExecutor)") from None
        threads = params.get("cpus_per_task")
        k = runs_per_gpu or default_runs_per_gpu(bool(params.get("gpus_per_node")) and options.device != "cpu",
                                                 options.cuda_graphs)
        cells = [todo[i:i + k] for i in range(0, len(todo), k)]
        n = len(cells)
        jobs = array.map_array(train_cells, cells, [options] * n, [spec.name] * n, [threads] * n)
        print(f"submitted job array {jobs[0].job_id.split('_')[0]} ({len(todo)} runs) of {n} task(s), up to {k} "
              f"runs at once each; logs in {folder}", file=out, flush=True)
        if not wait:
            result.submitted = [job.job_id for job in jobs]
            return result
        _wait(dict(zip(jobs, cells)), result, POLL_S["slurm"], _progress(len(todo), spec.name, options.progress))
    return result


def _outcome(job) -> dict:
    """The job function's return value, or a failure naming the job's log."""
    try:
        return job.result()
    except Exception as err:  # noqa: BLE001  (a crashed or cancelled job)
        last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        return {"status": "failed", "reason": f"job {job.job_id} died: {last} (log: {job.paths.stderr})"}


def _progress(total: int, name: str, show: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"sweep {name}", unit="run", file=sys.stderr, dynamic_ncols=True,
                disable=not show)


def _record(bar, result, config, outcome) -> None:
    result.add(config.run_id, outcome)
    if outcome["status"] == "failed":
        bar.write(f"failed {config.run_id}: {outcome['reason']}")
    bar.set_postfix(done=len(result.done), skipped=len(result.skipped), failed=len(result.failed))
    bar.update()


def _gpu_parameters(slot: int, gpus: list[int], device: str) -> dict:
    """The GPUs a local job sees (its CUDA_VISIBLE_DEVICES): one per worker slot, round robin,
    unless the device names one (``cuda:N``): then every job sees them all; none on CPU."""
    if not gpus:
        return {"gpus_per_node": 0}
    if device.startswith("cuda:"):
        return {"gpus_per_node": len(gpus), "visible_gpus": gpus}
    return {"gpus_per_node": 1, "visible_gpus": [gpus[slot % len(gpus)]]}


def _run_local(pool, todo, options, name, workers, gpus, threads, result) -> None:
    """Keep ``workers`` job processes busy until every run is handled."""
    queue, running, free = deque(todo), {}, list(range(workers))
    bar = _progress(len(todo), name, options.progress)
    try:
        while queue or running:
            while queue and free:
                slot, config = free.pop(0), queue.popleft()
                pool.update_parameters(**_gpu_parameters(slot, gpus, options.device))
                running[pool.submit(train_cell, config, options, name, threads)] = (config, slot)
            for job in [job for job in running if job.done()]:
                config, slot = running.pop(job)
                free.append(slot)
                _record(bar, result, config, _outcome(job))
            time.sleep(POLL_S["local"])
    except KeyboardInterrupt:
        for job in running:
            job.cancel()
        raise
    finally:
        bar.close()


def _wait(jobs: dict, result, poll_s: float, bar) -> None:
    """Wait for already submitted jobs ({job: its configs}); Ctrl-C leaves them running."""
    pending = dict(jobs)
    try:
        while pending:
            for job in [job for job in pending if job.done()]:
                configs, outcomes = pending.pop(job), _outcome(job)
                outcomes = outcomes if isinstance(outcomes, list) else [outcomes] * len(configs)   # a dead job
                for config, outcome in zip(configs, outcomes):
                    _record(bar, result, config, outcome)
            if pending:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        bar.write("stopped waiting; the jobs keep running (rerun the sweep to see where they stand)")
        raise
    finally:
        bar.close()
