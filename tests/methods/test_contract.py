"""The method contract, checked for every registered method: the built-ins, the installed plug-ins
and a tiny plug-in registered here through a temporary entry point.

A method's step returns a scalar loss and (B, classes) logits and fills every parameter's gradient;
where it declares ``FEASIBLE`` the input it trains on (the one its logits are of) lies in the
eps-ball around x and in [0, 1]; one seed gives one gradient; every hyperparameter has a ``suite run`` flag and a ``HELP``
line; ``LABEL`` and ``COLOR`` are usable; ``SEARCH`` and ``COUPLED`` name its hyperparameters.
"""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn as nn
from matplotlib.colors import is_color_like

from suite.cli import build_parser
from suite.methods import METHODS, get_method, plugin_names
from suite.methods import metadata as meta
from suite.methods.perturbation import drawing_from

PLUGIN_NAME = "contract_fgsm"
PLUGIN = '''"""FGSM from a random start, step gamma * eps: the contract test's own plug-in."""

import torch.nn.functional as F

from suite.methods.perturbation import signed_step, uniform_init

HELP = {"gamma": "step as a multiple of eps"}
LABEL = "Contract FGSM"
COLOR = "tab:olive"
FEASIBLE = True
SEARCH = {"gamma": [0.5, 2.0]}


def defaults(eps):
    return {"gamma": 1.25}


def step(model, x, y, eps, *, gamma):
    delta = signed_step(model, x, y, uniform_init(x, eps), eps, gamma * eps)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
'''
REGISTERED = [*METHODS, *sorted(set(plugin_names()) - set(METHODS) - {PLUGIN_NAME}), PLUGIN_NAME]
BATCH, CLASSES, EPS = 6, 5, 32 / 255


@pytest.fixture(scope="module", autouse=True)
def entry_point_plugin(tmp_path_factory):
    """``contract_fgsm`` as an installed package would register it: a dist-info with an entry point."""
    root = tmp_path_factory.mktemp("site")
    (root / "contract_pkg").mkdir()
    (root / "contract_pkg" / "__init__.py").write_text("")
    (root / "contract_pkg" / "fgsm.py").write_text(PLUGIN)
    info = root / "contract_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: contract-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[suite.methods]\n{PLUGIN_NAME} = contract_pkg.fgsm\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        yield
    sys.modules.pop("contract_pkg.fgsm", None)
    sys.modules.pop("contract_pkg", None)


class Recorder(nn.Module):
    """A small ReLU CNN that keeps every input it is given and its output (detached), to find the
    input a step trained on: the one whose output is the logits the step returned."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, CLASSES))
        self.inputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x):
        out = self.net(x)
        self.inputs.append((x.detach().clone(), out.detach().clone()))
        return out

    def trained_on(self, logits):
        return next(seen for seen, out in reversed(self.inputs) if torch.equal(out, logits))


def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(BATCH, 1, 8, 8, generator=g)
    x[:, :, 0] = 0.0  # pixels on the box's edges: a step past them must be clipped
    x[:, :, -1] = 1.0
    return x, torch.randint(0, CLASSES, (BATCH,), generator=g)


def run_step(name: str, seed: int = 0):
    module = get_method(name)
    model = Recorder()
    x, y = batch()
    torch.manual_seed(seed)
    with drawing_from(torch.Generator().manual_seed(seed)):
        loss, logits = module.step(model, x, y, EPS, **module.defaults(32.0))
    return model, x, loss, logits


@pytest.mark.parametrize("name", REGISTERED)
def test_step_returns_a_scalar_loss_and_logits_and_fills_every_gradient(name):
    model, _, loss, logits = run_step(name)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert logits.shape == (BATCH, CLASSES) and not logits.requires_grad
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", REGISTERED)
def test_a_feasible_method_trains_on_a_point_of_the_eps_ball_and_the_image_box(name):
    if not meta.feasible(get_method(name)):
        pytest.skip(f"{name} promises no feasible perturbation (FEASIBLE)")
    model, x, _, logits = run_step(name)
    seen = model.trained_on(logits)
    assert (seen - x).abs().max() <= EPS + 1e-6
    assert seen.min() >= 0 and seen.max() <= 1


def test_the_feasibility_check_catches_an_unprojected_step():
    """N-FGSM's step is not projected onto the eps-ball (FEASIBLE = False): its inputs leave it."""
    assert not meta.feasible(get_method("n_fgsm"))
    model, x, _, logits = run_step("n_fgsm")
    assert (model.trained_on(logits) - x).abs().max() > EPS + 1e-3


@pytest.mark.parametrize("name", REGISTERED)
def test_one_seed_gives_one_gradient(name):
    first, _, loss_a, _ = run_step(name, seed=3)
    second, _, loss_b, _ = run_step(name, seed=3)
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(first.parameters(), second.parameters()))


@pytest.mark.parametrize("name", REGISTERED)
def test_every_hyperparameter_has_a_run_flag_and_help(name):
    module = get_method(name)
    defaults = module.defaults(8.0)
    helps = meta.hparam_help(module)
    assert all(helps[key].strip() for key in defaults), f"{name}: HELP lacks {[k for k in defaults if not helps[k]]}"
    assert set(getattr(module, "HELP", {})) <= set(defaults)  # no help for a hyperparameter it lacks
    for key, default in defaults.items():
        value = "1" if default is None else str(default)
        args = build_parser().parse_args(["run", "--method", name, "--" + key.replace("_", "-"), value])
        assert getattr(args, key) == (1.0 if default is None else default)


@pytest.mark.parametrize("name", REGISTERED)
def test_label_colour_search_and_couplings_are_usable(name):
    module = get_method(name)
    assert isinstance(getattr(module, "LABEL", ""), str) and meta.label(name, module).strip()
    assert meta.color(module) is None or is_color_like(meta.color(module))
    defaults = module.defaults(8.0)
    assert set(meta.search(module)) <= set(defaults)
    for target, (source, function, formula) in meta.couplings(module).items():
        assert {target, source} <= set(defaults) and isinstance(formula, str)
        assert function(float(defaults[source] or 1.0)) > 0
    assert set(meta.choices(module)) <= {k for k, v in defaults.items() if isinstance(v, str)}
    for key, values in meta.choices(module).items():
        assert defaults[key] in values


def test_declared_colours_are_distinct():
    colours = [meta.color(get_method(name)) for name in REGISTERED]
    declared = [c for c in colours if c]
    assert len(set(declared)) == len(declared)
