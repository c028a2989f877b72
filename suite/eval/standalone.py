"""``suite eval``: one model under the suite's test protocol, written as a run record of kind "eval".

The model is a finished run's checkpoint (``best.pt``, the early-stopped model, or ``last.pt``), or
an external checkpoint with its network. The protocol is the trainer's own final evaluation
(:func:`suite.eval.protocol.evaluate_model`, with the run's evaluation seed), so an eval of a
finished run on the same points reproduces the run's SA and RA-PGD; a transfer attack from a
surrogate adds ``ra_transfer``. The record's id hashes the model's identity (the run id and which
checkpoint, or the checkpoint file's bytes and arch) and the protocol: rerunning it is skipped."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig, RunOptions
from ..errors import SuiteError, unknown_name, warn
from ..store import RunDir, iter_run_dirs, read_json, write_json, write_jsonl, write_summary
from ..store.status import RunStatus
from .checkpoint import build_network, check_classes, file_digest, load_weights, read_state_dict

KIND = "eval"


@dataclass
class ModelSpec:
    """Where a model comes from: ``run`` (an id, with ``which``), or ``checkpoint`` with ``arch``."""

    run: str | None = None
    which: str = "best"
    checkpoint: Path | None = None
    arch: str | None = None

    def check(self, flag: str) -> None:
        if (self.run is None) == (self.checkpoint is None):
            raise SuiteError(f"give one of {flag} RUN_ID or {flag}-checkpoint FILE with its arch")
        if self.checkpoint is not None and not self.arch:
            raise SuiteError(f"{self.checkpoint}: give its network with --arch NAME or pkg.module:factory")


@dataclass
class EvalRequest:
    model: ModelSpec
    dataset: str | None = None
    name: str | None = None
    surrogate: ModelSpec | None = None
    eps: float | None = None
    pgd_steps: int | None = None
    pgd_restarts: int | None = None
    test_points: int | None = None
    aa_points: int | None = None
    seed: int | None = None


def _finished_run(results_dir: Path, run_id: str) -> tuple[RunDir, dict]:
    run = RunDir(results_dir, run_id)
    if not run.config.exists():
        known = [r.run_id for r in iter_run_dirs(results_dir)]
        raise unknown_name(f"run in {Path(results_dir) / 'runs'}", run_id, known)
    record = read_json(run.config)
    if record.get("kind") == KIND:
        raise SuiteError(f"{run_id} is an eval record, not a trained run; give the run it evaluated")
    summary = run.read_summary() or {}
    if summary.get("status") != RunStatus.FINISHED:
        raise SuiteError(f"run {run_id} is {summary.get('status', 'not started')}, not finished; finish it first")
    return run, record


def _resolve(spec: ModelSpec, options: RunOptions):
    """(identity dict, base RunConfig or None, loader(info, device) -> model)."""
    if spec.run is not None:
        run, record = _finished_run(options.results_dir, spec.run)
        config = RunConfig.from_dict(record["config"])
        path = run.best if spec.which == "best" else run.last
        if spec.which == "best" and not path.exists():
            path = run.last
            warn(f"run {spec.run} has no best.pt (no early-stopped model was saved): evaluating its last.pt")
        identity = {"run": spec.run, "which": spec.which, "method": config.method, "arch": config.arch}

        def load(info, device):
            model = build_network(config.arch, info, dropout=config.dropout)
            load_weights(model, read_state_dict(path), path, config.arch)
            return model.to(device)

        return identity, config, load
    path = Path(spec.checkpoint)
    read_state_dict(path)  # refuse a missing or bad file before anything else
    identity = {"checkpoint": str(path), "sha": file_digest(path, spec.arch), "arch": spec.arch}

    def load(info, device):
        model = build_network(spec.arch, info)
        load_weights(model, read_state_dict(path), path, spec.arch)
        return model.to(device)

    return identity, None, load


def evaluate(request: EvalRequest, options: RunOptions | None = None) -> dict:
    """Evaluate the request's model; returns the eval record's summary (also in ``summary.json``)."""
    from ..engine.device import channels_last, pick_device
    from ..engine.rng import seeded
    from ..engine.trainer import EVAL_BATCH, RunData
    from .protocol import autoattack_available, evaluate_model
    from .transfer import transfer_accuracy

    options = options or RunOptions()
    request.model.check("--run")
    if request.surrogate is not None:
        request.surrogate.check("--surrogate")
    identity, base, load = _resolve(request.model, options)
    if base is None and not request.dataset:
        raise SuiteError("an external checkpoint needs --dataset (the data set it classifies)")
    base = base or RunConfig(method="standard", dataset=request.dataset, arch="small_cnn", epochs=0)
    if request.dataset and request.dataset != base.dataset:
        raise SuiteError(f"run {identity['run']} was trained on {base.dataset}; leave out --dataset {request.dataset}")
    overrides = {
        k: getattr(request, k)
        for k in ("eps", "pgd_steps", "pgd_restarts", "test_points", "aa_points", "seed")
        if getattr(request, k) is not None
    }
    if base.aa_points and "aa_points" not in overrides and "test_points" in overrides:
        overrides["aa_points"] = min(base.aa_points, request.test_points)
    if not autoattack_available() and (overrides.get("aa_points", base.aa_points) or 0):
        print("AutoAttack skipped: the pyautoattack package is not installed (pip install pyautoattack)", flush=True)
        overrides["aa_points"] = 0
    protocol_config = dataclasses.replace(base, **overrides, co_points=0)
    sur_identity, sur_load = None, None
    if request.surrogate is not None:
        sur_identity, _, sur_load = _resolve(request.surrogate, options)
    suffix = "" if request.model.which == "best" else "-last"
    label = request.name or (f"{base.method}@eval{suffix}" if request.model.run else "external")
    c = protocol_config
    protocol = {
        "dataset": c.dataset,
        "inject_beta": c.inject_beta,
        "eps": c.eps,
        "pgd_steps": c.pgd_steps,
        "pgd_restarts": c.pgd_restarts,
        "test_points": c.test_points,
        "aa_points": c.aa_points,
        "seed": c.seed,
        "surrogate": sur_identity,
    }
    key = json.dumps({"model": identity, "protocol": protocol, "name": label}, sort_keys=True)
    tag = identity["run"] + "-" + identity["which"] if request.model.run else f"{label}-{identity['sha']}"
    run_id = f"eval-{tag}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    record_dir = RunDir(options.results_dir, run_id)
    record_dir.refuse_links()
    if not options.force and record_dir.is_finished():
        print(f"{run_id}: already finished; skipped (use --force to evaluate it again)", flush=True)
        return record_dir.read_summary()
    device = pick_device(options.device)
    data = RunData.load(dataclasses.replace(c, batch_size=1), options, device)
    model = channels_last(load(data.info, device))
    check_classes(model, data.test_x, data.info.num_classes, c.dataset)
    surrogate = None
    if sur_load is not None:
        surrogate = channels_last(sur_load(data.info, device))
        check_classes(surrogate, data.test_x, data.info.num_classes, c.dataset)
    batch, eval_seed = EVAL_BATCH[device.type], c.seed + 7919  # the trainer's evaluation seed
    result = evaluate_model(
        model,
        data.test_x,
        data.test_y,
        c.eps / 255,
        c.pgd_steps,
        c.pgd_restarts,
        aa_points=c.aa_points,
        seed=c.seed,
        batch_size=batch,
        rng=lambda: seeded(eval_seed, device),
        aa_rng=lambda: seeded(eval_seed, device),
        say=lambda text: print(text, flush=True),
        which=label,
    )
    if surrogate is not None:
        with seeded(eval_seed, device):
            result["ra_transfer"] = transfer_accuracy(
                surrogate, model, data.test_x, data.test_y, c.eps / 255, c.pgd_steps, c.pgd_restarts, batch_size=batch
            )
        result["transfer_from"] = sur_identity
    config_dict = {**c.to_dict(), "method": label, "arch": identity["arch"]}
    write_json(
        record_dir.config,
        {
            "run_id": run_id,
            "kind": KIND,
            "name": label,
            "config": config_dict,
            "evaluated": identity,
            "protocol": protocol,
        },
    )
    write_jsonl(record_dir.metrics, [])
    summary = {
        "run_id": run_id,
        "kind": KIND,
        "name": label,
        "method": label,
        "dataset": c.dataset,
        "arch": identity["arch"],
        "eps": c.eps,
        "seed": c.seed,
        "status": RunStatus.FINISHED.value,
        "error": None,
        "evaluated": identity,
        "protocol": protocol,
        "device": str(device),
        "best": result,
        "last": result,
    }
    write_summary(record_dir.summary, summary)
    line = ", ".join(f"{k} {v:.1f}" for k, v in result.items() if isinstance(v, float))
    print(f"{run_id}: {line}", flush=True)
    return summary
