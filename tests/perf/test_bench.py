"""``suite bench`` and the performance-related properties of the methods.

Nothing here depends on how fast anything ran: the bench's figures are checked for presence
and sanity only.
"""

import gc
import json
import math
import weakref

import pytest
import torch

from suite.cli import main
from suite.config import RunOptions
from suite.errors import SuiteError
from suite.methods import METHODS, resolve_hparams
from suite.models import build_model
from suite.perf.bench import run_bench
from suite.perf.settings import SECTIONS, Settings
from suite.perf.timing import interleaved, peak_memory
from tests.conftest import small_cnn_problem

EPS = 8 / 255


def _positive_finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


# --- the bench ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_bench():
    """One quick bench through the command line (JSON on stdout), shared by the checks below."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "--quick", "--arch", "small_cnn", "--workers", "1", "--json"]) == 0
    return json.loads(out.getvalue())


def test_quick_bench_describes_the_device_and_settings(quick_bench):
    assert {"device", "device_type", "torch", "python", "settings", "targets"} <= set(quick_bench)
    assert quick_bench["torch"] == torch.__version__
    settings = quick_bench["settings"]
    assert settings["arch"] == "small_cnn" and settings["quick"] is True
    assert settings["sections"] == list(SECTIONS)
    assert {"batch_size", "eps", "reps", "warmup", "images", "workers"} <= set(settings)


def test_quick_bench_times_every_method_relative_to_standard_and_fast_at(quick_bench):
    m = quick_bench["methods"]
    names = {"standard", "fgsm", "fast_at", "n_fgsm", "fast_at_ga", "pgd2", "pgd10", "fast_bat", "fast_bat_fd"}
    assert set(METHODS) - {"pgd"} <= names  # every registered method is timed
    for key in ("seconds", "ratio_to_standard", "ratio_to_fast_at", "peak_memory_bytes"):
        assert set(m[key]) == names, key
    for key in ("seconds", "ratio_to_standard", "ratio_to_fast_at"):
        assert all(_positive_finite(v) for v in m[key].values()), key
    assert m["ratio_to_standard"]["standard"] == 1.0 and m["ratio_to_fast_at"]["fast_at"] == 1.0
    assert all(v is None or (isinstance(v, int) and v >= 0) for v in m["peak_memory_bytes"].values())
    for key in (
        "fd_rel_error",
        "fd_rel_error_total",
        "fd_rel_error_float64",
        "fd_rel_error_total_float64",
        "correction_share",
        "correction_share_float64",
    ):
        assert _positive_finite(m[key]), key
    assert set(m["contiguous_over_channels_last"]) == {"fast_at", "fast_bat"}
    assert all(_positive_finite(v) for v in m["contiguous_over_channels_last"].values())


def test_quick_bench_compares_with_the_reference_transcriptions(quick_bench):
    r = quick_bench["reference"]
    assert set(r["saving"]) == {"fast_bat", "fast_at_ga"}
    assert all(_positive_finite(v) for v in r["saving"].values())
    assert all(_positive_finite(v) for v in r["seconds"].values())


def test_quick_bench_compares_the_data_pipelines(quick_bench):
    p = quick_bench["pipeline"]
    loaders = {"device_loader", "dataloader_0w", "dataloader_1w"}
    for mode in ("train", "data"):
        assert set(p["seconds"][mode]) == loaders
        assert all(_positive_finite(v) for v in p["seconds"][mode].values())
        assert _positive_finite(p["dataloader_over_device_loader"][mode])
        assert p["all_ratios"][mode]["device_loader"] == 1.0
    assert p["compared_dataloader"] in loaders - {"device_loader"}


def test_quick_bench_compares_early_exit_with_the_full_attack(quick_bench):
    e = quick_bench["eval"]
    if "skipped" in e:
        pytest.skip(e["skipped"])
    assert _positive_finite(e["cost_ratio"]) and _positive_finite(e["eps"])
    assert 0 < e["work_ratio"] <= 1.0  # early exit never runs more samples than the full attack
    assert set(e["seconds"]) == set(e["robust_acc"]) == {"early_exit", "full"}
    assert all(0.0 <= v <= e["clean_acc"] for v in e["robust_acc"].values())
    # Same model, same points: the two variants differ only in their random starts.
    assert e["robust_acc_abs_diff"] <= 25.0


def test_quick_bench_checks_the_targets_of_the_measured_figures(quick_bench):
    targets = quick_bench["targets"]
    assert len(targets) == 6 if "skipped" not in quick_bench["eval"] else 5
    assert all(_positive_finite(t["value"]) and isinstance(t["met"], bool) for t in targets)


def test_bench_subset_and_table(capsys):
    assert main(["bench", "--quick", "--arch", "small_cnn", "--only", "reference"]) == 0
    table = capsys.readouterr().out
    assert "suite vs reference" in table and "training iteration" not in table and "data pipeline" not in table


def test_bench_refuses_unknown_names_before_measuring():
    with pytest.raises(SuiteError, match="unknown arch"):
        run_bench(Settings(arch="nope", quick=True))
    with pytest.raises(SuiteError, match="unknown dataset"):
        run_bench(Settings(dataset="nope", quick=True))
    with pytest.raises(SuiteError, match="section"):
        run_bench(Settings(sections=("nope",), quick=True))


def test_interleaved_runs_every_variant_in_each_round_in_rotating_order():
    calls = []
    times = interleaved(
        {name: (lambda n=name: calls.append(n)) for name in "abc"}, reps=3, warmup=1, device=torch.device("cpu")
    )
    assert calls == list("abcbcacababc")
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_peak_memory_sees_a_large_allocation():
    size = 64 * 2**20
    peak = peak_memory(lambda: torch.ones(size // 4), torch.device("cpu"))  # float32: `size` bytes
    assert peak is None or peak >= size // 2


# --- no graph outlives its iteration -----------------------------------------------------------


class SavedTensorTracker:
    """Counts the tensors autograd saves for backward and how many of them are still alive.

    Every saved tensor is packed into a box that only its graph references, so a box outlives
    its iteration exactly when some graph does (double-backward graphs included). The box holds
    the tensor detached: a saved output holding its own grad_fn would make a cycle that
    Python's garbage collector cannot see (autograd restores the graph links on unpacking).
    """

    class Box:
        def __init__(self, tensor):
            self.tensor = tensor.detach()

    def __init__(self):
        self.packed = 0
        self.boxes = weakref.WeakSet()

    def pack(self, tensor):
        box = self.Box(tensor)
        self.packed += 1
        self.boxes.add(box)
        return box

    def unpack(self, box):
        return box.tensor

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)

    def alive(self) -> int:
        gc.collect()
        return len(self.boxes)


def test_the_tracker_sees_a_graph_kept_alive():
    model, x, y, _ = small_cnn_problem(torch.float32)
    tracker = SavedTensorTracker()
    with tracker.hooks():
        kept = model(x).sum()
    assert tracker.alive() > 0
    del kept
    assert tracker.alive() == 0


@pytest.mark.parametrize(
    "method,overrides", [("fast_bat", {}), ("fast_bat", {"implicit": "finite_diff"}), ("fast_at_ga", {})]
)
@pytest.mark.parametrize("arch", ["small_cnn", "preact_resnet18"])  # with batch norm's own double backward
def test_no_graph_survives_the_training_iterations(method, overrides, arch):
    model, x, y, _ = small_cnn_problem(torch.float32)
    if arch != "small_cnn":
        model = build_model(arch, 1, 10, (0.5,), (0.25,))
        x = x[:, :, :16, :16]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    hp = resolve_hparams(method, 8, overrides)
    tracker = SavedTensorTracker()
    results = []
    with tracker.hooks():
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            results.append(METHODS[method].step(model, x, y, EPS, **hp))
            optimizer.step()
    assert tracker.packed > 0
    assert all(t.grad_fn is None for pair in results for t in pair)
    assert tracker.alive() == 0


def test_precision_cosines_rank_the_precisions_and_the_noise():
    """float32 stays next to float64, bf16 autocast drifts away, and the noise cosine is 1 exactly
    where a method draws nothing at random (standard training) and below 1 where it does."""
    from suite.models import build_model
    from suite.perf.precision import gradient_cosines

    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, [0.5], [0.25])
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    cos = gradient_cosines(model, x, y, 8 / 255)
    assert set(cos) == {"standard", "fgsm", "fast_at", "n_fgsm", "fast_at_ga", "pgd2", "fast_bat"}  # every method
    for row in cos.values():
        assert row["fp32"] > 0.9999 and row["bf16"] < row["fp32"] and row["mixed"] < row["fp32"]
    for first_order in ("standard", "fgsm", "fast_at", "n_fgsm", "pgd2"):  # mixed differs only in second-order terms
        assert cos[first_order]["mixed"] == cos[first_order]["bf16"]
    assert cos["fast_at_ga"]["mixed"] != cos["fast_at_ga"]["bf16"]
    assert cos["standard"]["noise"] == pytest.approx(1.0, abs=1e-12) == cos["fgsm"]["noise"]
    assert cos["fast_at"]["noise"] < 0.9999 and cos["fast_at_ga"]["noise"] < 0.99999


def test_precision_is_measured_at_a_trained_run_on_its_own_test_points(finished_tiny_run, capsys):
    """--precision-run loads the run's last checkpoint (the trained weights, not a fresh network),
    takes its test points and eps, and names the checkpoint in the table."""
    from suite.engine.trainer import RunData
    from suite.perf.precision import trained_batch
    from suite.store.atomic import load_checkpoint
    from suite.store.run_dir import RunDir

    config, results, summary = finished_tiny_run
    run_dir = RunDir(results, summary["run_id"]).path
    model, x, y, eps, at = trained_batch(run_dir, 8, results.parent / "data", torch.device("cpu"))
    saved = load_checkpoint(run_dir / "last.pt")["model"]
    assert all(torch.equal(value, saved[name]) for name, value in model.state_dict().items())
    data = RunData.load(config, RunOptions(data_dir=results.parent / "data", download=False), torch.device("cpu"))
    assert torch.equal(x, data.test_x[:8]) and torch.equal(y, data.test_y[:8]) and eps == config.eps
    assert f"epoch {config.epochs}" in at

    assert (
        main(
            [
                "bench",
                "--quick",
                "--only",
                "precision",
                "--precision-run",
                str(run_dir),
                "--data-dir",
                str(results.parent / "data"),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert summary["run_id"] in table and "gradient cosine to float64" in table
    rows = [line.split() for line in table.splitlines() if line.split()[:1] == ["fast_bat"]]
    assert rows and all(-1 <= float(v) <= 1 for v in rows[-1][1:])


def test_precision_run_must_be_a_run_record(tmp_path):
    with pytest.raises(SuiteError, match="not a run record"):
        run_bench(Settings(quick=True, sections=("precision",), precision_run=tmp_path / "runs" / "nope"))


def test_the_gpu_check_table_renders_the_bench_sections_it_reuses(quick_bench):
    """The GPU check prints bench's pipeline and eval sections: render the real ones (from JSON,
    as a --record file holds them), so that a formatting slip cannot cost a GPU session its table."""
    from suite.perf.gpu_check import PARTS, format_gpu_check

    rates = {
        m: {"over_one": {"1": 1.0, "2": 1.9}, "iters_per_s": {"1": 40.0, "2": 76.0}} for m in ("fast_at", "fast_bat")
    }
    result = {
        "device": "a GPU",
        "torch": "2.x",
        "seconds": {"total": 1.0},
        "errors": {},
        "failures": [],
        "pipeline": quick_bench["pipeline"],
        "eval": quick_bench["eval"],
        "runs_per_gpu": {"eager": {"processes": rates, "packed": rates}},
    }
    text = format_gpu_check(json.loads(json.dumps(result)))
    assert "pipeline: " in text and "device loader epoch" in text
    assert "eval: early-exit / full PGD-" in text
    assert (
        "runs per GPU (eager, packed), iterations/s summed over K runs relative to one: fast_at K=1: 1.00, K=2: 1.90"
        in text
    )
    assert "not run: " + ", ".join(p for p in PARTS if p not in result) in text
