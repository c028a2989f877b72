"""torch.compile runs the suite's models whole: no graph break and no recompile per layer shape.

The suite's layers (suite/models/layers.py) once broke the graph in every convolution under
torch 2.11 (dynamo could not trace their context variable), so dynamo compiled each layer's
``_conv_forward`` on its own, recompiled it for every weight shape until its recompile limit,
then ran the model eagerly: 3x slower steps on an H200. Graph breaks and recompiles are decided
by dynamo's tracing, the same on every backend and device, so this is checked on the CPU with
the cheap "eager" backend, for the step of every compilable method, with and without autocast.
"""
import contextlib

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from suite.methods import METHODS, compilable, get_method, resolve_hparams
from suite.models import build_model, layers

COMPILABLE = [(name, {"steps": 2} if name == "pgd" else {"implicit": "finite_diff"} if name == "fast_bat" else {})
              for name in METHODS]
COMPILABLE = [(name, hp) for name, hp in COMPILABLE if compilable(name, resolve_hparams(name, 8, hp))]
MAX_GRAPHS = 4          # train/eval-free forward graphs a step may legitimately need (grad modes); a model
                        # recompiled per layer shape needs one per conv shape (PreActResNet-18: 10+)


class UntraceableFlag:
    """The second-order flag as torch 2.11's dynamo saw it: reading it breaks the graph."""

    def get(self):
        torch._dynamo.graph_break()
        return False


@pytest.fixture(autouse=True)
def untraceable_flag(monkeypatch):
    """torch 2.14 traces context variables, 2.11 did not: emulate the older dynamo."""
    monkeypatch.setattr(layers, "_SECOND_ORDER", UntraceableFlag())


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("preact_resnet18", 3, 10, [0.5] * 3, [0.25] * 3)


def test_the_model_compiles_to_one_graph(model):
    explained = torch._dynamo.explain(model)(torch.rand(2, 3, 32, 32))
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    assert explained.graph_count == 1


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_compiled_steps_have_no_graph_break_nor_per_shape_recompile(model, autocast):
    assert {name for name, _ in COMPILABLE} >= {"standard", "fast_at", "pgd", "fast_bat"}
    torch._dynamo.reset()
    counters.clear()
    net = torch.compile(model, backend="eager")
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with amp:
        for name, overrides in COMPILABLE:
            hparams = resolve_hparams(name, 8, overrides)
            for _ in range(2):
                get_method(name).step(net, x, y, 8 / 255, **hparams)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] <= MAX_GRAPHS, dict(counters["stats"])
    torch._dynamo.reset()
