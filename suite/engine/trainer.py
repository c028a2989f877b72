"""The training engine: one configuration in, one durable run record out.

``execute(config, options, callbacks)`` validates the configuration and loads the data
before writing anything, then trains epoch by epoch (checkpointing after each one, so a
killed run resumes from its last complete epoch), keeps the epoch with the best
validation robust accuracy (early stopping), and finally evaluates the early-stopped and
the last-epoch model on the test set.
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import RunConfig, RunOptions
from ..data import DeviceLoader, load_splits
from ..data.inject import inject
from ..errors import SuiteError, error_line, warn
from ..eval import clean_accuracy, robust_accuracy
from ..eval.diagnostics import co_diagnostics
from ..eval.protocol import evaluate_model
from ..methods import get_method
from ..methods import precision as method_precision
from ..methods.identity import method_code
from ..methods.perturbation import drawing_from
from ..methods.plugins import method_source
from ..models import build_model
from ..store import (
    RunDir,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
    write_json,
    write_jsonl,
    write_summary,
)
from ..store.status import RunStatus
from . import signals
from .callbacks import Callback, RunPruned
from .cuda_graphs import GraphedIteration, make_sgd, tensor_learning_rates
from .device import channels_last, pick_device, sync, training_autocast, use_cuda_graphs, uses_tf32
from .provenance import code_version, git_state, now, versions
from .reuse import reusable, stale_reason
from .rng import GLOBAL_RNG, run_generator, seed_global, seeded

EVAL_BATCH = {"cpu": 500, "cuda": 1000}
PROGRESS_EVERY = 10  # iterations between progress-bar updates (each one reads the device)


def execute(config: RunConfig, options: RunOptions | None = None, callbacks: list[Callback] = ()) -> dict:
    """Train and evaluate one run; returns its summary (also written to ``summary.json``).

    A finished run is skipped (unless ``options.force``). Bad input raises SuiteError before
    any file is written; a failure during training is recorded as ``failed`` and re-raised.
    """
    options = options or RunOptions()
    config = config.resolved()
    run = RunDir(options.results_dir, config.run_id)
    run.refuse_links()
    if reusable(run, config.method, options):
        return skip_finished(run)
    device = pick_device(options.device)
    data = RunData.load(config, options, device)
    with run.lock():
        if reusable(run, config.method, options):  # another process finished it meanwhile
            return skip_finished(run)
        stale = None if options.accept_stale else stale_reason(run, config.method)
        if stale:  # its checkpoints too were made by the old code: nothing of it is resumed
            warn(f"{run.run_id}: {stale}; training it again from scratch (--accept-stale keeps its result)")
        if options.force or stale:
            for path in (run.last, run.last_prev, run.best, run.metrics, run.summary):
                path.unlink(missing_ok=True)
        with signals.stopping_on_signals():  # in the main thread; a job function may have installed them
            return Trainer(config, options, data, device, run).run(list(callbacks))


def skip_finished(run: RunDir) -> dict:
    print(f"{run.run_id}: already finished; skipped (use --force to train it again)", flush=True)
    return run.read_summary()


def stop_line(stop: signals.Stopped, epochs_done: int, epochs: int) -> str:
    """The record's error line for a run a signal stopped: what stopped it, where it resumes."""
    return (
        f"stopped by {signals.signal_name(stop.signum)} after {epochs_done} of {epochs} epochs; "
        "rerun the same command to resume from there"
    )


def inject_split(split, beta: float, num_classes: int):
    """One (images, labels) split with the class-wise pattern of suite/data/inject.py added."""
    x, y = split
    return inject(x, y, beta, num_classes), y


def _subset(x, y, n, what, flag):
    if n is None:
        return x, y
    if n > len(x):
        raise SuiteError(f"{what} has {len(x)} points but {n} were requested; lower {flag} to at most {len(x)}")
    return x[:n], y[:n]


@dataclass
class RunData:
    """The splits of one run, cut to the requested sizes and moved to the device."""

    info: object
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @classmethod
    def load(cls, config: RunConfig, options: RunOptions, device) -> RunData:
        splits = load_splits(config.dataset, options.data_dir, download=options.download)
        train = _subset(splits.train_x, splits.train_y, config.train_points, "the training split", "--train-points")
        val = _subset(splits.val_x, splits.val_y, config.val_points, "the validation split", "--val-points")
        test = _subset(splits.test_x, splits.test_y, config.test_points, "the test set", "--test-points")
        if config.inject_beta is not None:
            train, val, test = (
                inject_split(split, config.inject_beta, splits.info.num_classes) for split in (train, val, test)
            )
        if config.aa_points > len(test[0]):
            raise SuiteError(f"--aa-points {config.aa_points} exceeds the {len(test[0])} test points evaluated")
        if config.co_points > len(train[0]):
            raise SuiteError(f"--co-points {config.co_points} exceeds the {len(train[0])} training points")
        if config.batch_size > len(train[0]):
            raise SuiteError(f"batch size {config.batch_size} exceeds the {len(train[0])} training points")
        as_float = lambda t: channels_last(t.to(device).float().div_(255))  # noqa: E731  (eval splits are small)
        return cls(
            splits.info,
            train[0].to(device),
            train[1].to(device),
            as_float(val[0]),
            val[1].to(device),
            as_float(test[0]),
            test[1].to(device),
        )


def run_model(config: RunConfig, info, device: torch.device) -> torch.nn.Module:
    """The network a run with ``config`` trains, on ``device`` (initialised from torch's current seed)."""
    return build_model(config.arch, info.in_channels, info.num_classes, info.mean, info.std, dropout=config.dropout).to(
        device
    )


def checkpoint_model(config: RunConfig, info, path: Path, device: torch.device) -> tuple[torch.nn.Module, int]:
    """A run's network with the weights of its checkpoint ``path`` (loaded with weights_only=True),
    in train mode, and the checkpoint's 0-based epoch."""
    model = run_model(config, info, device)
    state = load_checkpoint(path, map_location=device)
    model.load_state_dict(state["model"])
    return model, state["epoch"]


def lr_factor(schedule: str, epochs: int, iters_per_epoch: int):
    """Per-iteration multiplier of the peak learning rate (for LambdaLR)."""

    def factor(step: int) -> float:
        t = (step + 1) / iters_per_epoch  # fractional epochs done after this iteration
        if schedule == "cyclic":
            return float(np.interp(t, [0, epochs / 2, epochs], [0, 1, 0]))
        if schedule == "multistep":
            return 0.1 ** ((t > epochs * 0.5) + (t > epochs * 0.75))
        return 1.0

    return factor


class Trainer:
    def __init__(self, config: RunConfig, options: RunOptions, data: RunData, device, run: RunDir):
        self.config, self.options, self.data, self.device, self.run_dir = config, options, data, device, run
        self.method = get_method(config.method)
        self.eps = config.eps / 255
        with GLOBAL_RNG:
            torch.manual_seed(config.seed)
            self.model = run_model(config, data.info, device)
        self.generator = run_generator(device)  # None: the global generators (a run alone)
        self.cuda = device.type == "cuda"
        self.precision = method_precision(config.method)
        if self.cuda:
            torch.backends.cudnn.benchmark = True
            tf32 = uses_tf32(self.precision)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        self.model = channels_last(self.model)
        self.graphs = use_cuda_graphs(options, device)
        self.optimizer = make_sgd(
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            device=device,
            tensor_lr=self.graphs,
        )
        self.iters_per_epoch = math.ceil(len(data.train_x) / config.batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_factor(config.lr_schedule, config.epochs, self.iters_per_epoch)
        )
        self.eval_batch = EVAL_BATCH[device.type]
        self.last_said = None  # when say() last printed (perf_counter), for its "previous step" time
        self.graphed = (
            GraphedIteration(self.iteration, self.model, self.optimizer, generator=self.generator)
            if self.graphs
            else None
        )

    # -- the run ---------------------------------------------------------------------------
    def run(self, callbacks: list[Callback]) -> dict:
        config, run = self.config, self.run_dir
        write_json(
            run.config,
            {
                "run_id": run.run_id,
                "name": config.name,
                "config": config.to_dict(),
                "code_version": code_version(),
                "method_code": method_code(config.method),
                "method_module": self.method.__name__,
                "git": git_state(),
                "protocol": self.protocol(),
            },
        )
        (run.path / "error.txt").unlink(missing_ok=True)  # a new attempt: the last one's traceback is stale
        state = run.load_resume_state(self.device)
        history, start_epoch, best = [], 0, {"epoch": None, "val_robust_acc": -1.0}
        previous = run.read_summary() or {}
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.graphs:
                tensor_learning_rates(self.optimizer, self.device)  # the checkpoint may hold float ones
            history, best = state["history"], state["best"]
            start_epoch = state["epoch"] + 1
            run.repair_best(state)
            print(f"{run.run_id}: resuming after epoch {start_epoch} of {config.epochs}", flush=True)
        write_jsonl(run.metrics, history)
        record = {
            **self.identity(),
            "status": RunStatus.RUNNING.value,
            "error": None,
            "wandb_id": previous.get("wandb_id"),
            "started": previous.get("started") or now(),
            "device": str(self.device),
            "cuda_graphs": self.graphs,
            "epochs_done": len(history),
            "protocol": self.protocol(),
        }
        try:
            for callback in callbacks:
                callback.on_start(run, config, record)
            write_summary(run.summary, record)
            for epoch in range(start_epoch, config.epochs):
                row = self.train_epoch(epoch)
                row.update(self.validate())
                history.append(row)
                improved = row["val_robust_acc"] > best["val_robust_acc"]
                if improved:
                    best = {"epoch": epoch, "val_robust_acc": row["val_robust_acc"]}
                checkpoint = {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "epoch": epoch,
                    "history": history,
                    "best": best,
                }
                run.save_last(checkpoint)  # first: a kill before best.pt is written is repaired from it
                if improved:
                    save_checkpoint(run.best, {"model": checkpoint["model"], "epoch": epoch})
                write_jsonl(run.metrics, history)
                record["epochs_done"] = len(history)
                write_summary(run.summary, record)
                self.report_epoch(row)
                for callback in callbacks:
                    callback.on_epoch_end(epoch, row)
                signals.check()  # a safe point: this epoch's checkpoint is the resume point
            with signals.raising_at_once():  # evaluation writes nothing until its end
                record.update(self.final_evaluation(best, history))
            record["status"] = RunStatus.FINISHED.value
        except RunPruned as pruned:
            record.update(status=RunStatus.PRUNED.value, error=str(pruned) or "pruned by a callback")
        except signals.Stopped as stop:
            record.update(status=RunStatus.INTERRUPTED.value, error=stop_line(stop, len(history), config.epochs))
            raise
        except KeyboardInterrupt:
            record.update(
                status=RunStatus.INTERRUPTED.value, error="interrupted by the user; rerun the same command to resume"
            )
            raise
        except BaseException as err:
            record.update(status=RunStatus.FAILED.value, error=error_line(err))
            with contextlib.suppress(OSError):  # a full disk may not take it; the summary says why
                atomic_write_bytes(run.path / "error.txt", traceback.format_exc().encode())
            raise
        finally:
            record["finished"] = now()
            write_summary(run.summary, record)
            for callback in callbacks:
                callback.on_end(record)
        return record

    def identity(self) -> dict:
        c = self.config
        return {
            "run_id": self.run_dir.run_id,
            "name": c.name,
            "method": c.method,
            "dataset": c.dataset,
            "arch": c.arch,
            "eps": c.eps,
            "seed": c.seed,
            "epochs": c.epochs,
            "hparams": c.hparams,
            "method_code": method_code(c.method),  # the code it ran (suite.engine.reuse: stale when it changes)
            "method_module": self.method.__name__,  # where a worker or reader finds the method again
            "method_source": method_source(c.method),  # a plug-in's entry point, distribution, import paths
            "git": git_state(),
        }

    def protocol(self) -> dict:
        c, d = self.config, self.data
        return {
            "test_points": len(d.test_x),
            "pgd": f"PGD-{c.pgd_steps}-{c.pgd_restarts} (step eps/4, any restart breaking a point counts)",
            "autoattack": f"AutoAttack standard on the first {c.aa_points} test points" if c.aa_points else None,
            "validation": f"PGD-{c.val_pgd_steps}-{c.val_pgd_restarts} on {len(d.val_x)} validation points per epoch",
            "co_probe": f"PGD-{c.val_pgd_steps} on {c.co_points} fixed training points" if c.co_points else None,
            "train_points": len(d.train_x),
            **(
                {
                    "injected_features": f"class-wise DCT pattern, beta {c.inject_beta:g}/255, added to every training, "
                    f"validation and test image, clipped to [0, 1] (suite/data/inject.py)"
                }
                if c.inject_beta is not None
                else {}
            ),
            "versions": versions(),
        }

    # -- one epoch -------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict:
        config, info = self.config, self.data.info
        epoch_seed = config.seed * 100_003 + epoch
        seed_global(epoch_seed)  # attack noise (and dropout): reproducible per epoch
        if self.generator is not None:  # packed with other runs: the step draws from its own, seeded alike
            self.generator.manual_seed(epoch_seed)
        loader = DeviceLoader(
            self.data.train_x,
            self.data.train_y,
            config.batch_size,
            shuffle=True,
            crop_padding=info.crop_padding,
            flip=info.flip,
            device=self.device,
            generator=torch.Generator().manual_seed(epoch_seed),
        )
        self.model.train()
        # Running totals stay on the device: reading them every iteration would sync CUDA each step.
        total_loss = torch.zeros((), device=self.device)
        total_correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        sync(self.device)
        start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=not self.options.progress)
        for i, (x, y) in enumerate(bar):
            signals.check()  # a safe point: the partial epoch is dropped, the last checkpoint stays
            x = channels_last(x)
            if self.graphed is not None and len(y) == config.batch_size and self.graphed.accepts(x):
                loss, logits = self.graphed(x, y)
            else:  # eager; with graphs, the last partial batch
                self.optimizer.zero_grad(set_to_none=True)
                loss, logits = self.iteration(x, y)
            self.scheduler.step()
            total_loss += loss.float() * len(y)
            total_correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if self.options.progress and i % PROGRESS_EVERY == 0:
                bar.set_postfix(loss=f"{total_loss.item() / seen:.3f}", acc=f"{100 * total_correct.item() / seen:.1f}")
        sync(self.device)
        seconds = time.perf_counter() - start
        train_loss, train_acc = total_loss.item() / seen, 100.0 * total_correct.item() / seen
        if not math.isfinite(train_loss):
            raise SuiteError(f"training loss became non-finite in epoch {epoch + 1}; lower --lr")
        return {
            "epoch": epoch + 1,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "train_loss": train_loss,
            "train_acc": train_acc,
            "epoch_seconds": seconds,
        }

    def iteration(self, x, y):
        """One training iteration from cleared gradients: the method's step, then the optimizer's."""
        with (
            training_autocast(self.device, cache_enabled=not self.graphs, precision=self.precision),
            drawing_from(self.generator),
        ):
            loss, logits = self.method.step(self.model, x, y, self.eps, **self.config.hparams)
        self.optimizer.step()
        return loss, logits

    def validate(self) -> dict:
        c, d = self.config, self.data
        with self.eval_rng():
            row = {
                "val_clean_acc": clean_accuracy(self.model, d.val_x, d.val_y, batch_size=self.eval_batch),
                "val_robust_acc": robust_accuracy(
                    self.model,
                    d.val_x,
                    d.val_y,
                    self.eps,
                    c.val_pgd_steps,
                    c.val_pgd_restarts,
                    batch_size=self.eval_batch,
                    graphs=self.graphs,
                ),
            }
            if c.co_points:
                x = d.train_x[: c.co_points].float().div(255)
                row.update(co_diagnostics(self.model, x, d.train_y[: c.co_points], self.eps, c.val_pgd_steps))
        return row

    def report_epoch(self, row: dict) -> None:
        if self.options.progress:
            extra = f"  train-PGD {row['train_pgd_acc']:5.1f}" if "train_pgd_acc" in row else ""
            tqdm.write(
                f"epoch {row['epoch']:3d}/{self.config.epochs}  loss {row['train_loss']:.3f}  "
                f"train {row['train_acc']:5.1f}  val clean {row['val_clean_acc']:5.1f}  "
                f"val robust {row['val_robust_acc']:5.1f}{extra}  ({row['epoch_seconds']:.1f}s)"
            )

    # -- final evaluation ------------------------------------------------------------------
    def final_evaluation(self, best: dict, history: list[dict]) -> dict:
        results = {"last": self.evaluate_test("last-epoch model")}
        if best["epoch"] is not None and best["epoch"] != len(history) - 1:
            state, problem = self.run_dir.recover_best(best["epoch"], map_location=self.device)
            if state is None:
                warn(problem)
                results["best"] = {"sa": None, "ra_pgd": None, "ra_aa": None, "unavailable": problem}
            else:
                self.model.load_state_dict(state)
                results["best"] = self.evaluate_test(f"best model (epoch {best['epoch'] + 1})")
        else:
            self.say(f"best model = last-epoch model (epoch {len(history)}): its results count for both")
            results["best"] = dict(results["last"])
        seconds = [row["epoch_seconds"] for row in history]
        return {
            **results,
            "best_epoch": None if best["epoch"] is None else best["epoch"] + 1,
            "epoch_seconds": float(np.mean(seconds)) if seconds else None,
        }

    def evaluate_test(self, which: str) -> dict:
        """SA and RA-PGD on the test points; RA-AA on the first ``aa_points``, with RA-PGD on those
        same points beside it (``ra_pgd_aa_subset``, from the same PGD attack) to compare like for like.
        ``which`` names the model in the progress lines."""
        c, d = self.config, self.data
        return evaluate_model(
            self.model,
            d.test_x,
            d.test_y,
            self.eps,
            c.pgd_steps,
            c.pgd_restarts,
            aa_points=c.aa_points,
            seed=c.seed,
            batch_size=self.eval_batch,
            rng=self.eval_rng,
            aa_rng=lambda: seeded(self.eval_seed, self.device),
            graphs=self.graphs,
            say=self.say,
            which=which,
        )

    # -- helpers ---------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """A progress line with the time since the last one (off with --quiet)."""
        if self.options.progress:
            now_s = time.perf_counter()
            since = self.last_said
            tqdm.write(text + (f"  (previous step {now_s - since:.0f}s)" if since is not None else ""))
            self.last_said = now_s

    def eval_rng(self):
        """Evaluation draws its random starts from a fixed seed, independent of training: from the global
        generators (a run alone), or, packed with other runs, from a generator of its own seeded alike (the
        same numbers), so that packed runs evaluate at the same time instead of taking turns for the lock."""
        if self.generator is None:
            return seeded(self.eval_seed, self.device)
        return drawing_from(torch.Generator(device=self.device).manual_seed(self.eval_seed))

    @property
    def eval_seed(self) -> int:
        return self.config.seed + 7919
