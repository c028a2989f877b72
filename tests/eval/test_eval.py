"""Evaluation attacks against a known strong attack (APGD-CE from pyautoattack)."""

import pytest
import torch

from suite.data import DeviceLoader, load_splits
from suite.eval import autoattack_accuracy, clean_accuracy, pgd_broken, pgd_robust, robust_accuracy
from suite.methods import fast_at
from suite.models import build_model

EPS = 16 / 255


@pytest.fixture(scope="module")
def trained():
    """A small CNN adversarially trained for a few hundred steps on real Fashion-MNIST."""
    splits = load_splits("fashion_mnist", "data", download=False)
    info = splits.info
    torch.manual_seed(0)
    model = build_model("small_cnn", info.in_channels, info.num_classes, info.mean, info.std)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DeviceLoader(
        splits.train_x[:6000], splits.train_y[:6000], 64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    for x, y in loader:
        optimizer.zero_grad()
        fast_at.step(model, x, y, EPS, alpha_factor=1.25)
        optimizer.step()
    model.eval()
    return model, splits.test_x[:300].float() / 255, splits.test_y[:300]


def test_pgd_is_at_least_as_strong_as_apgd_ce(trained):
    model, x, y = trained
    torch.manual_seed(1)
    clean = clean_accuracy(model, x, y)
    pgd = robust_accuracy(model, x, y, EPS, steps=50, restarts=10)
    apgd = autoattack_accuracy(model, x, y, EPS, version="custom", attacks=["apgd-ce"], seed=0)
    assert 20 < apgd < clean, "the model must have non-trivial robustness for this comparison to mean anything"
    assert pgd <= apgd + 1.0
    assert pgd <= clean


def test_early_exit_counts_the_same_points_as_attacking_everything(trained):
    model, x, y = trained
    torch.manual_seed(2)
    early = pgd_broken(model, x, y, EPS, steps=20, restarts=3, early_exit=True)
    torch.manual_seed(2)
    full = pgd_broken(model, x, y, EPS, steps=20, restarts=3, early_exit=False)
    # Different random draws after the first exit, so allow a couple of points either way.
    assert abs(int(early.sum()) - int(full.sum())) <= 0.02 * len(x)
    clean_wrong = model(x).argmax(1) != y
    assert early[clean_wrong].all() and full[clean_wrong].all()


def test_per_point_pgd_result_is_what_robust_accuracy_averages(trained):
    model, x, y = trained
    torch.manual_seed(3)
    robust = pgd_robust(model, x, y, EPS, steps=10, restarts=2, batch_size=128)
    torch.manual_seed(3)
    accuracy = robust_accuracy(model, x, y, EPS, steps=10, restarts=2, batch_size=128)
    assert robust.dtype == torch.bool and robust.shape == (len(x),)
    assert accuracy == 100 * int(robust.sum()) / len(x)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    assert not (robust & ~correct).any()  # a misclassified point is never robust
    assert 0 < int(robust.sum()) < int(correct.sum())  # the attack breaks some correct points, not all


def test_pgd_never_beats_clean_accuracy_and_zero_eps_is_clean(trained):
    model, x, y = trained
    assert robust_accuracy(model, x, y, 1e-12, steps=3, restarts=1) == pytest.approx(clean_accuracy(model, x, y))
    assert robust_accuracy(model, x, y, 64 / 255, steps=20, restarts=1) < clean_accuracy(model, x, y)


def test_pgd_adversarial_examples_are_feasible(trained):
    """The broken points are broken by perturbations inside the feasible set: replay the attack by hand.

    The replay does the suite's arithmetic op for op (the same random start over the whole batch, the
    summed loss, the same projection; ``early_exit=False`` keeps the batch whole), so the two agree
    point for point on any CPU: a point counts as broken iff some feasible iterate misclassifies it.
    """
    from suite.methods.perturbation import input_grad, project, uniform_init

    model, x, y = trained
    torch.manual_seed(3)
    with torch.no_grad():
        by_hand = model(x).argmax(1) != y
    delta = uniform_init(x, EPS)
    for _ in range(10):
        assert delta.abs().max() <= EPS + 1e-6 and (x + delta).min() >= 0 and (x + delta).max() <= 1
        grad, logits = input_grad(model, x + delta, y)
        by_hand |= logits.argmax(1) != y
        delta = project(delta + EPS / 4 * grad.sign(), x, EPS)
    assert delta.abs().max() <= EPS + 1e-6 and (x + delta).min() >= 0 and (x + delta).max() <= 1
    with torch.no_grad():
        by_hand |= model(x + delta).argmax(1) != y
    torch.manual_seed(3)
    ours = pgd_broken(model, x, y, EPS, steps=10, restarts=1, early_exit=False)
    assert torch.equal(ours, by_hand)
    assert 0 < int(ours.sum()) < len(x), "the attack must break some points and not all"


def per_point_starts(x, eps):
    """A random start that depends only on the point and the restart, not on the batch it runs in."""

    def start(points, restart):
        return torch.stack([uniform_init_seeded(x[i], eps, 7919 * restart + int(i)) for i in points])

    return start


def uniform_init_seeded(xi, eps, seed):
    g = torch.Generator().manual_seed(seed)
    delta = (torch.rand(xi.shape, generator=g, dtype=xi.dtype) * 2 - 1) * eps
    return (xi + delta).clamp(0, 1) - xi


class BatchSizes(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.model(x)


def test_early_exit_refill_gives_the_full_attacks_verdicts_with_full_batches(trained):
    """Same per-point starts: the refilled early exit breaks exactly the points the full attack breaks,
    keeps every batch full until its queue runs dry, and runs fewer samples through the model."""
    model, x, y = trained
    model64 = BatchSizes(model.double())
    x64 = x[:120].double()
    eps, steps, restarts, slots = 10 / 255, 6, 3, 32
    start = per_point_starts(x64, eps)
    full = pgd_broken(model64, x64, y[:120], eps, steps, restarts, early_exit=False, batch_size=slots, start=start)
    full_work = sum(model64.sizes)
    model64.sizes.clear()
    early = pgd_broken(model64, x64, y[:120], eps, steps, restarts, early_exit=True, batch_size=slots, start=start)
    model.float()
    assert 0.2 < full.float().mean() < 0.9, "the comparison needs both broken and robust points"
    assert torch.equal(early, full)
    sizes = model64.sizes[1 + (120 - 1) // slots :]  # after the clean pass
    drain = next(i for i, n in enumerate(sizes) if n < slots)
    assert len(sizes) - drain <= steps + 1  # only the last attempts run in a partial batch
    assert sum(model64.sizes) < full_work
