"""Whole-iteration CUDA graphs: tensor learning rates (checked on the CPU), the CPU's eager path,
and, on a GPU only, graph replay against eager execution."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from suite.config import RunOptions
from suite.engine.cuda_graphs import make_sgd, tensor_learning_rates
from suite.engine.device import use_cuda_graphs
from suite.engine.trainer import execute, lr_factor
from suite.models import build_model
from suite.store.atomic import load_checkpoint, save_checkpoint

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def train(tensor_lr, iterations=8, resume_at=None, tmp_path=None):
    """A few SGD iterations under the cyclic schedule; returns (lrs, parameters)."""
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, [0.5], [0.25])
    optimizer = make_sgd(model.parameters(), lr=0.2, momentum=0.9, weight_decay=5e-4, device=CPU, tensor_lr=tensor_lr)
    factor = lr_factor("cyclic", 2, iterations // 2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    data = torch.Generator().manual_seed(1)
    lrs = []
    for i in range(iterations):
        if i == resume_at:  # a float-LR checkpoint resumed with tensor learning rates
            path = tmp_path / "last.pt"
            save_checkpoint(path, {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
            state = load_checkpoint(path)
            optimizer = make_sgd(
                model.parameters(), lr=0.2, momentum=0.9, weight_decay=5e-4, device=CPU, tensor_lr=True
            )
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            tensor_learning_rates(optimizer, CPU)
        x, y = torch.rand(16, 1, 28, 28, generator=data), torch.randint(0, 10, (16,), generator=data)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        scheduler.step()
        lrs.append(float(optimizer.param_groups[0]["lr"]))
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor) == (tensor_lr or resume_at is not None)
    return lrs, [p.detach().clone() for p in model.parameters()]


def test_tensor_learning_rates_follow_the_schedule_and_train_the_same():
    float_lrs, float_params = train(tensor_lr=False)
    tensor_lrs, tensor_params = train(tensor_lr=True)
    assert tensor_lrs == float_lrs  # float64 on the CPU: exactly
    for a, b in zip(float_params, tensor_params):  # fused vs foreach SGD: the same update, other rounding
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_float_lr_checkpoint_resumes_with_tensor_learning_rates(tmp_path):
    float_lrs, float_params = train(tensor_lr=False)
    lrs, params = train(tensor_lr=False, resume_at=4, tmp_path=tmp_path)
    assert lrs == float_lrs
    for a, b in zip(float_params, params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_cuda_graphs_are_the_default_on_cuda_only():
    assert use_cuda_graphs(RunOptions(), torch.device("cuda"))
    assert not use_cuda_graphs(RunOptions(cuda_graphs=False), torch.device("cuda"))
    assert not use_cuda_graphs(RunOptions(), CPU)


def test_the_cli_turns_graphs_off_with_no_cuda_graphs():
    from suite.cli import build_parser
    from suite.commands.run import options_from_args

    parser = build_parser()
    assert options_from_args(parser.parse_args(["run"])).cuda_graphs is True
    assert options_from_args(parser.parse_args(["run", "--no-cuda-graphs"])).cuda_graphs is False


def test_the_graphs_default_on_the_cpu_trains_eagerly_as_before(tiny_config, tiny_options, tmp_path):
    config = dataclasses.replace(tiny_config, epochs=1, method="fast_at")
    eager = execute(config, dataclasses.replace(tiny_options, cuda_graphs=False))
    graphs = execute(config, dataclasses.replace(tiny_options, cuda_graphs=True, results_dir=tmp_path / "g"))
    assert graphs["cuda_graphs"] is False and eager["cuda_graphs"] is False
    assert graphs["last"] == eager["last"]


# --- on a GPU ----------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("method", ["standard", "fast_at", "fast_at_ga", "pgd", "fast_bat"])
def test_graph_replay_trains_as_eager_execution(method):
    from suite.perf.gpu_check import graph_eager_parity

    result = graph_eager_parity(method, iterations=4)
    assert result["max_rel_diff"] < 1e-4, result


@needs_cuda
def test_replays_draw_new_random_numbers():
    from suite.perf.gpu_check import replays_draw_new_random_numbers

    assert replays_draw_new_random_numbers()


def test_a_function_whose_capture_fails_runs_eagerly_after_a_warning(monkeypatch, capsys):
    from suite.engine.cuda_graphs import GraphedFunction

    def double(x):
        return (2 * x,)

    graphed = GraphedFunction(double)
    monkeypatch.setattr(graphed, "_capture", lambda args: (_ for _ in ()).throw(RuntimeError("not capturable")))
    x = torch.arange(3.0)
    assert torch.equal(graphed(x)[0], 2 * x) and torch.equal(graphed(x + 1)[0], 2 * x + 2)
    assert graphed.failed
    assert capsys.readouterr().err.count("CUDA graph capture failed (not capturable)") == 1


@needs_cuda
@pytest.mark.parametrize("early_exit", [False, True])
def test_graphed_pgd_breaks_the_points_eager_pgd_breaks(early_exit):
    from suite.perf.gpu_check import eval_graph_parity

    result = eval_graph_parity(early_exit=early_exit, points=96, batch=32, steps=4, restarts=2)
    assert result["equal"] and 0 < result["broken"] < 96, result
