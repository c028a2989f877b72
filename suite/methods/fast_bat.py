"""Fast-BAT (Zhang et al., ICML 2022): fast bi-level adversarial training.

The lower level linearizes the attack loss l_atk = -CE (summed over the batch) at a point z
and takes an unsigned step of size ``a`` (``ll_step``, in /255) that is projected onto the
feasible set: delta* = P(z - a * grad l_atk(theta, z)). The upper level trains on CE at
x + delta* and adds the implicit-gradient correction

    c = -(1/B) * grad_theta < g1, H * q / lambda >,

with g1 = grad_delta l_atk(theta, z) (differentiable in theta), H the mask of coordinates
where delta* lies strictly inside its box, and q = grad_delta CE_sum(theta, delta*).
With a = 1/lambda the result is the exact derivative of CE(f(x + P(z - a grad l_atk)))
with respect to theta, z held fixed (see tests).

Passes: z is found without a graph; one forward at x + delta* serves both the training
loss and q (a single backward yields q and the parameter gradient); the correction is one
double backward through the graph of g1, restricted to the parameters.

``implicit="finite_diff"`` replaces the double backward by a forward difference of parameter
gradients along v = H * q (see :func:`finite_diff_step`): cheaper, and without create_graph.
It matches the exact term only where the step is large against round-off yet crosses no
activation kink of a ReLU network: so in float64 (relative error about 1e-6 on a small CNN),
not in float32, where no step is both and the difference picks up the curvature of the kinks
it crosses, tens of times the exact term (``suite bench`` reports it as ``fd_rel_error``).
The default is ``"exact"``.
"""

import torch
import torch.nn.functional as F

from ..config.checks import check_number
from ..errors import SuiteError
from ..models.second_order import second_order, second_order_term
from .perturbation import input_grad, project, uniform_init

BOX_MARGIN = 1e-7
IMPLICIT_MODES = ("exact", "finite_diff")


LABEL = "Fast-BAT"  # its name in reports
COLOR = "#1f77b4"  # its colour in every figure
HELP = {  # one line per hyperparameter: suite run --help
    "lmbda": "lower-level regularizer lambda",
    "ll_step": "lower-level step a in /255",
    "implicit": "implicit-gradient term by double backward (exact) or finite difference",
}
CHOICES = {"implicit": IMPLICIT_MODES}
FEASIBLE = True  # the input it trains on lies in the eps-ball and [0, 1]
SEARCH = {"lmbda": [0.01, 1000]}  # suite tune's default search: log-uniform
# suite tune with coupled: true: ll_step follows lmbda (a = 1/lambda, the paper's closed form)
COUPLED = {"ll_step": ("lmbda", lambda lmbda: 255.0 / lmbda, "255/lmbda")}
SYMBOLS = {"lmbda": "λ"}  # axis labels of the tuning figure


def defaults(eps: float) -> dict:
    return {"lmbda": 10.0, "ll_step": 5000.0 if eps <= 8 else 2000.0, "implicit": "exact"}


def validate(hparams: dict) -> None:
    for key in ("lmbda", "ll_step"):
        check_number(f"fast_bat hyperparameter {key}", hparams[key], above=0)
    if hparams["implicit"] not in IMPLICIT_MODES:
        raise SuiteError(f"fast_bat: implicit must be one of {', '.join(IMPLICIT_MODES)}, got {hparams['implicit']!r}")


def step(model, x, y, eps, *, lmbda, ll_step, implicit="exact"):
    a = ll_step / 255
    z0 = uniform_init(x, eps)
    grad_ce, _ = input_grad(model, x + z0, y)  # grad l_atk = -grad CE
    z = project(z0 + a * grad_ce, x, eps)  # step 2, no graph kept
    return implicit_step(model, x, y, z, eps, a=a, lmbda=lmbda, implicit=implicit)


def interior_mask(delta, x, eps):
    """H: 1 where delta lies strictly inside max(-x, -eps) < delta < min(1 - x, eps)."""
    lower = torch.clamp(-x, min=-eps)
    upper = torch.clamp(1 - x, max=eps)
    return ((delta > lower + BOX_MARGIN) & (delta < upper - BOX_MARGIN)).to(delta.dtype)


def implicit_step(model, x, y, z, eps, *, a, lmbda, implicit="exact"):
    """Steps 3-7 at linearization point z: accumulate the parameter gradient, return (loss, logits)."""
    if implicit == "finite_diff":
        return finite_diff_step(model, x, y, z, eps, a=a, lmbda=lmbda)
    if implicit != "exact":
        raise SuiteError(f"fast_bat: implicit must be one of {', '.join(IMPLICIT_MODES)}, got {implicit!r}")
    z = z.detach().requires_grad_(True)
    with second_order():  # its graph is differentiated twice
        ce_z = F.cross_entropy(model(x + z), y, reduction="sum")
        (g1,) = torch.autograd.grad(-ce_z, z, create_graph=True)  # step 3
    delta = project(z.detach() - a * g1.detach(), x, eps).requires_grad_(True)
    h = interior_mask(delta.detach(), x, eps)  # step 4

    logits = model(x + delta)  # steps 5 and 7
    batch = x.shape[0]
    loss = F.cross_entropy(logits, y)
    loss.backward()  # accumulates the parameter gradient and delta.grad
    q = delta.grad * batch  # gradient of the summed CE at delta*
    correction = -(g1 * (h * q)).sum() / (batch * lmbda)  # step 6
    with second_order_term():  # it differentiates g1's graph
        correction.backward(inputs=_params(model))  # no use for the gradient with respect to z
    return loss.detach(), logits.detach()


def finite_diff_step(model, x, y, z, eps, *, a, lmbda):
    """Steps 3-7 with the correction as a forward difference; no double backward, no kept graph.

    With l_atk = -CE_sum, c = -(1/(B lambda)) grad_theta <g1, v> is the derivative along v of
    z -> grad_theta CE_sum(theta, z) / (B lambda), so
    c ~= (grad_theta CE_sum(z + h v) - grad_theta CE_sum(z)) / (B lambda h). The gradient at z
    comes from the backward that yields g1; z + h v costs one more forward and backward. The
    step h makes the shift's root-mean-square sqrt(machine epsilon) * eps (of the precision the
    model computes in), the usual balance of truncation and round-off for a forward difference.
    """
    params = _params(model)
    batch = x.shape[0]
    z = z.detach().requires_grad_(True)
    ce_z = F.cross_entropy(model(x + z), y, reduction="sum")
    grad_z, *base = torch.autograd.grad(ce_z, [z, *params], allow_unused=True)  # step 3: g1 = -grad_z
    delta = project(z.detach() + a * grad_z, x, eps).requires_grad_(True)
    mask = interior_mask(delta.detach(), x, eps)  # step 4 (H)

    logits = model(x + delta)  # steps 5 and 7
    loss = F.cross_entropy(logits, y)
    loss.backward()
    v = mask * delta.grad * batch  # v = H * q
    rms = v.square().mean().sqrt().clamp_min(torch.finfo(v.dtype).tiny)  # no host sync
    h = _machine_eps(x) ** 0.5 * eps / rms
    scale = 1.0 / (batch * lmbda * h)
    shifted = F.cross_entropy(model(x + z.detach() + h * v), y, reduction="sum")
    (scale * shifted).backward(inputs=params)  # step 6, first half
    with torch.no_grad():
        for p, g in zip(params, base):
            if g is not None:
                p.grad.sub_(scale * g)  # step 6, second half
    return loss.detach(), logits.detach()


def _machine_eps(x) -> float:
    """Machine epsilon of the precision the model computes in: autocast's dtype where it is on."""
    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        return torch.finfo(torch.get_autocast_dtype(kind)).eps
    return torch.finfo(x.dtype).eps


def _params(model):
    return [p for p in model.parameters() if p.requires_grad]
