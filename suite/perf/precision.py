"""How far each training method's parameter gradient moves with the precision the network computes in.

For one batch, the gradient a method's step accumulates is computed with the network in float64
(the reference), and in each precision of the device: on a CPU float32 and bf16 autocast, on
CUDA float32 (TF32 off), float32 with TF32 convolutions and matmuls, and bf16 autocast. Each is
compared with the reference by cosine. Beside it, the method's own sampling noise: the cosine
between the float64 gradient and the float64 gradient with a fresh draw of the method's
randomness (random start, GradAlign's noise). A precision whose cosine stays above the noise
cosine changes the gradient less than the method's sampling already does.

Only the network changes precision: the batch, the perturbations and their random draws stay in
float64 (:class:`Precision` casts the input on the way in and the logits on the way out), so
every variant draws the same random numbers and the cosines measure rounding alone. Autocast
wraps the whole step, backward passes included, as in training.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import DATASETS
from ..errors import SuiteError
from ..methods import get_method, resolve_hparams
from ..models import build_model
from ..models.second_order import float32_second_order
from .timing import progress

# (name, method, overrides) measured: every method (PGD-AT as Table 1's PGD-2)
PRECISION_METHODS = [
    ("standard", "standard", {}),
    ("fgsm", "fgsm", {}),
    ("fast_at", "fast_at", {}),
    ("n_fgsm", "n_fgsm", {}),
    ("fast_at_ga", "fast_at_ga", {}),
    ("pgd2", "pgd", {"steps": 2}),
    ("fast_bat", "fast_bat", {}),
]


class Precision(torch.nn.Module):
    """The network in ``dtype``, fed and read in float64 (autocast, which leaves float64 alone, then
    changes the precision of the network's operations only, forward and backward)."""

    def __init__(self, model, dtype):
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x):
        return self.model(x.to(self.dtype)).to(torch.float64)


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 for CUDA convolutions and matmuls, restored afterwards."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def modes(device: torch.device) -> dict:
    """Precision name -> (network dtype, autocast, TF32, float32 second-order passes) measured on this
    device; "bf16", "mixed" and "fp32" are what a method's ``PRECISION`` gives it in training."""
    if device.type == "cuda":
        return {
            "fp32": (torch.float32, False, False, False),
            "fp32+tf32": (torch.float32, False, True, False),
            "bf16": (torch.float32, True, True, False),
            "mixed": (torch.float32, True, False, True),
        }
    return {
        "fp32": (torch.float32, False, False, False),
        "bf16": (torch.float32, True, False, False),
        "mixed": (torch.float32, True, False, True),
    }


def step_gradient(method: str, model, x, y, eps: float, hparams: dict, seed: int, mode=None) -> torch.Tensor:
    """The parameter gradient one step of ``method`` accumulates (float64 vector); ``mode`` as in :func:`modes`,
    None for float64."""
    dtype, autocast, use_tf32, mixed = mode or (torch.float64, False, False, False)
    net = copy.deepcopy(model).to(dtype)
    torch.manual_seed(seed)
    with contextlib.ExitStack() as stack:  # as training_autocast does: around the whole step
        stack.enter_context(tf32(use_tf32))
        if autocast:
            stack.enter_context(torch.autocast(x.device.type, dtype=torch.bfloat16))
        if mixed:
            stack.enter_context(float32_second_order())
        get_method(method).step(Precision(net, dtype), x, y, eps, **hparams)
    return torch.cat([p.grad.flatten().double() for p in net.parameters() if p.grad is not None])


def gradient_cosines(model, x, y, eps: float, seed: int = 0, methods=PRECISION_METHODS) -> dict:
    """{method: {precision: cosine to float64, ..., "noise": cosine of a fresh random draw}}."""
    device = x.device
    x = x.double()
    out = {}
    for name, method, overrides in methods:
        hparams = resolve_hparams(method, eps * 255, overrides)
        reference = step_gradient(method, model, x, y, eps, hparams, seed)
        row = {
            p: float(F.cosine_similarity(step_gradient(method, model, x, y, eps, hparams, seed, m), reference, dim=0))
            for p, m in modes(device).items()
        }
        fresh = step_gradient(method, model, x, y, eps, hparams, seed + 1)
        row["noise"] = float(F.cosine_similarity(fresh, reference, dim=0))
        out[name] = row
    return out


# -- the ``precision`` section of suite bench ------------------------------------------------


def bench_precision(s, device: torch.device) -> dict:
    """Cosines of each method's parameter gradient in this device's precisions to its float64 value:
    at initialization on random inputs, or with ``precision_run`` at that run's last checkpoint on the
    first points of its own test data (and its eps)."""
    if s.precision_run is not None:
        model, x, y, eps, at = trained_batch(Path(s.precision_run), s.precision_batch, s.data_dir, device)
    else:
        info = DATASETS[s.dataset]
        torch.manual_seed(s.seed)
        model = build_model(s.arch, info.in_channels, info.num_classes, info.mean, info.std).to(device)
        x = torch.rand(s.precision_batch, info.in_channels, info.image_size, info.image_size, device=device)
        y = torch.randint(0, info.num_classes, (s.precision_batch,), device=device)
        eps, at = s.eps, f"initialization ({s.arch}, random inputs)"
    seeds = [s.seed + i for i in range(s.precision_seeds)]
    progress(f"measuring gradient precision at {at}, batch {s.precision_batch}, seed(s) {seeds}")
    runs = [gradient_cosines(model, x, y, eps / 255, seed=seed) for seed in seeds]
    mean, std = spread(runs)
    return {
        "batch": s.precision_batch,
        "at": at,
        "eps": eps,
        "seeds": seeds,
        "cosines": mean,  # over the seeds (each one draws the methods' randomness afresh)
        "std": std,
        "policy": precision_policy(runs),
    }


def spread(runs: list[dict]) -> tuple[dict, dict]:
    """The mean and standard deviation over seeds of :func:`gradient_cosines` results (0 for one seed)."""
    mean, std = {}, {}
    for method in runs[0]:
        mean[method], std[method] = {}, {}
        for key in runs[0][method]:
            values = torch.tensor([r[method][key] for r in runs], dtype=torch.float64)
            mean[method][key] = float(values.mean())
            std[method][key] = float(values.std()) if len(values) > 1 else 0.0
    return mean, std


# -- the policy: which precision each method may train in -------------------------------------

POLICY_MIN_SEEDS = 3
TRAINING_PRECISIONS = ("bf16", "mixed", "fp32")  # cheapest first: what a method's PRECISION may be


def precision_policy(runs: list[dict]) -> dict:
    """The precision policy that the measured cosines support, method by method.

    A precision is within a method's own sampling noise when its gradient's mean cosine to float64
    is at least the mean cosine of a fresh draw of the method's randomness (rounding then moves the
    gradient less than the method's own sampling does). The policy is the cheapest such precision
    among bf16, mixed and fp32 (fp32 also when none is: it is the best a device offers). A verdict
    needs cosines at :data:`POLICY_MIN_SEEDS` seeds; a method that draws nothing at random (noise
    cosine 1) has no noise to compare with and gets none. ``today`` is the method's ``PRECISION``.
    """
    from ..methods import precision as method_precision

    mean, std = spread(runs)
    policy = {}
    for name, method, _ in PRECISION_METHODS:
        if name not in mean:
            continue
        row, noise = mean[name], mean[name]["noise"]
        entry = {"today": method_precision(method), "noise": noise, "noise_std": std[name]["noise"], "verdict": None}
        if len(runs) < POLICY_MIN_SEEDS:
            entry["reason"] = f"{len(runs)} seed(s); a verdict needs {POLICY_MIN_SEEDS}"
        elif noise >= 1 - 1e-12:
            entry["reason"] = "draws nothing at random: no sampling noise to compare with"
        else:
            within = [p for p in TRAINING_PRECISIONS if p in row and row[p] >= noise]
            entry["verdict"] = within[0] if within else "fp32"
            entry["reason"] = ", ".join(
                f"{p} {row[p]:.4f} +- {std[name][p]:.4f} {'>=' if row[p] >= noise else '<'} noise"
                for p in TRAINING_PRECISIONS
                if p in row
            )
        policy[method] = entry
    return policy


def policy_lines(policy: dict) -> list[str]:
    """One line per method: what the measurement says and whether it differs from today's policy."""
    lines = []
    for method, p in policy.items():
        if p["verdict"] is None:
            lines.append(f"policy: {method} no verdict ({p['reason']}); today {p['today']}")
            continue
        change = (
            "as today"
            if p["verdict"] == p["today"]
            else f"today {p['today']}: set PRECISION = {p['verdict']!r} in suite/methods/{method}.py"
        )
        lines.append(
            f"policy: {method} may train in {p['verdict']} (noise {p['noise']:.4f} +- {p['noise_std']:.4f}; "
            f"{p['reason']}); {change}"
        )
    return lines


def run_record(run_dir: Path):
    """The run record at ``run_dir`` and its config; refused unless it has a config and a last checkpoint."""
    from ..store import RunDir

    run = RunDir(run_dir.parent.parent, run_dir.name)
    if not run.config.is_file() or not run.last.is_file():
        raise SuiteError(
            f"--precision-run {run_dir}: not a run record with a checkpoint (expected "
            f"{run.config.name} and {run.last.name} in it; see suite runs)"
        )
    return run, run.read_config()


def trained_batch(run_dir: Path, batch: int, data_dir: Path, device: torch.device):
    """A finished run's network at its last checkpoint (train mode, as a training step sees it) and the
    first ``batch`` points of its test data: (model, x, y, eps, description)."""
    from ..config import RunOptions
    from ..engine.trainer import RunData, checkpoint_model

    run, config = run_record(run_dir)
    data = RunData.load(config, RunOptions(data_dir=data_dir), device)
    if batch > len(data.test_x):
        raise SuiteError(f"--precision-batch {batch} exceeds the run's {len(data.test_x)} test points")
    model, epoch = checkpoint_model(config, data.info, run.last, device)
    return (
        model,
        data.test_x[:batch],
        data.test_y[:batch],
        config.eps,
        f"{run_dir.name}, last checkpoint (epoch {epoch + 1})",
    )
