"""The training methods' math: gradients against autograd, finite differences and the reference."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from suite.errors import SuiteError
from suite.methods import METHODS, fast_at_ga, fast_bat, fgsm, n_fgsm, resolve_hparams
from suite.methods.perturbation import project
from suite.models import build_model
from suite.perf.reference_impl import fast_at_ga_reference, fast_bat_reference

EPS = 8 / 255


def small_model(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return build_model("small_cnn", 1, 10, (0.5,), (0.25,)).to(dtype)


def batch(n=8, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    # Include saturated pixels so the box constraint [0, 1] is active somewhere.
    x = torch.rand(n, 1, 28, 28, generator=g, dtype=dtype)
    x[:, :, :4] = 0.0
    x[:, :, -4:] = 1.0
    return x, torch.randint(0, 10, (n,), generator=g)


def param_grads(model):
    return [p.grad.detach().clone() for p in model.parameters()]


def run_step(step, model, *args, seed=3, **kwargs):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss, logits = step(model, *args, **kwargs)
    return loss, logits, param_grads(model)


def assert_grads_close(a, b, rtol, atol):
    for ga, gb in zip(a, b, strict=True):
        torch.testing.assert_close(ga, gb, rtol=rtol, atol=atol)


class InputRecorder(nn.Module):
    """Wraps a model and remembers the inputs of its forward passes (``last_input``: the last one)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.inputs = model, []

    @property
    def last_input(self):
        return self.inputs[-1]

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.model(x)


# --- Fast-BAT ---------------------------------------------------------------------------------


def test_fast_bat_with_coupled_step_is_the_exact_derivative_of_the_lower_level_solution():
    """a = 1/lambda: the parameter gradient equals autograd through CE(f(x + P(z - a grad l_atk(theta, z))))."""
    model = small_model()
    x, y = batch()
    a = 40 / 255  # large enough that the projection clips many coordinates
    torch.manual_seed(5)
    z = project(torch.empty_like(x).uniform_(-EPS, EPS), x, EPS)

    zz = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(-F.cross_entropy(model(x + zz), y, reduction="sum"), zz, create_graph=True)
    delta = project(z - a * g, x, EPS)
    clipped = (delta.detach().abs() >= EPS - 1e-12) | ((x + delta.detach()) <= 0) | ((x + delta.detach()) >= 1)
    assert 0.05 < clipped.double().mean() < 0.95, "the test must exercise both clipped and free coordinates"
    expected = torch.autograd.grad(F.cross_entropy(model(x + delta), y), list(model.parameters()))

    model.zero_grad(set_to_none=True)
    fast_bat.implicit_step(model, x, y, z, EPS, a=a, lmbda=1 / a)
    assert_grads_close(param_grads(model), expected, rtol=1e-9, atol=1e-12)


def test_fast_bat_correction_term_matters():
    """Without the correction (lambda -> infinity) the gradient differs: the test above is not vacuous."""
    model = small_model()
    x, y = batch()
    _, _, with_correction = run_step(fast_bat.step, model, x, y, EPS, lmbda=1.0, ll_step=5000.0)
    _, _, without = run_step(fast_bat.step, model, x, y, EPS, lmbda=1e30, ll_step=5000.0)
    diff = sum(float((a - b).norm()) for a, b in zip(with_correction, without))
    assert diff > 1e-6


@pytest.mark.parametrize("eps255", [8, 16])
def test_fast_bat_default_values_match_the_reference_transcription(eps255):
    model = small_model()
    x, y = batch()
    hp = fast_bat.defaults(eps255)
    assert hp["ll_step"] == (5000.0 if eps255 <= 8 else 2000.0) and hp["lmbda"] == 10.0
    loss, logits, ours = run_step(fast_bat.step, model, x, y, eps255 / 255, lmbda=hp["lmbda"], ll_step=hp["ll_step"])
    ref_loss, ref_logits, reference = run_step(
        fast_bat_reference, model, x, y, eps255 / 255, lmbda=hp["lmbda"], ll_step=hp["ll_step"]
    )
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(logits, ref_logits)
    assert_grads_close(ours, reference, rtol=1e-9, atol=1e-12)


def test_interior_mask_marks_strictly_interior_coordinates():
    x = torch.tensor([0.0, 0.5, 1.0, 0.5, 0.02])
    eps = 0.1
    delta = torch.tensor([0.05, 0.1, -0.05, 0.0, -0.02])
    # x=0: lower bound 0 -> 0.05 inside; x=.5: delta at +eps -> boundary; x=1: upper 0 -> -0.05 inside;
    # x=.5, 0 inside; x=.02: lower bound -0.02 -> on the boundary.
    assert fast_bat.interior_mask(delta, x, eps).tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]


# --- Fast-AT-GA --------------------------------------------------------------------------------


def test_gradalign_regularizer_matches_a_direct_computation():
    g1 = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 4.0]])
    g2 = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [-3.0, -4.0]])
    # cosines: 0, 1, (excluded: zero gradient), -1 -> mean 0 -> regularizer 1
    assert fast_at_ga.alignment_regularizer(g1, g2).item() == pytest.approx(1.0)
    assert fast_at_ga.alignment_regularizer(g1[1:2], g2[1:2]).item() == pytest.approx(0.0, abs=1e-6)


def test_gradalign_regularizer_masks_zero_gradients_without_indexing():
    """The masked form (CUDA-graph capturable) has the value and gradient of the mean over the kept
    rows, no NaN from the excluded ones, and 0 (with a zero gradient) when every row is excluded."""
    g1 = torch.randn(5, 7, dtype=torch.float64)
    g2 = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    zero = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64).unsqueeze(1)
    reg = fast_at_ga.alignment_regularizer(g1, g2 * zero)
    (grad,) = torch.autograd.grad(reg, g2)
    keep = [0, 2, 3, 4]
    g2k = g2.detach()[keep].requires_grad_(True)
    direct = 1 - F.cosine_similarity(g1[keep], g2k, dim=1).mean()
    (grad_direct,) = torch.autograd.grad(direct, g2k)
    torch.testing.assert_close(reg, direct.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad[keep], grad_direct, rtol=1e-12, atol=1e-12)
    assert grad[1].abs().max() == 0
    none = fast_at_ga.alignment_regularizer(torch.zeros(3, 4), g2[:3, :4])
    assert none.item() == 0.0 and torch.autograd.grad(none, g2)[0].abs().max() == 0


def clean_input_grad(model, x, y):
    xc = x.clone().requires_grad_(True)
    return torch.autograd.grad(F.cross_entropy(model(xc), y, reduction="sum"), xc)[0]


def gradalign_direct(model, x, y, eta, coef, g1=None):
    """coef * (1 - mean cos(grad CE(x), grad CE(x + eta))), written out per sample; grad CE(x) is a constant."""
    g1 = clean_input_grad(model, x, y) if g1 is None else g1
    xn = (x + eta).requires_grad_(True)
    (g2,) = torch.autograd.grad(F.cross_entropy(model(xn), y, reduction="sum"), xn, create_graph=True)
    cos = [(a * b).sum() / (a.norm() * b.norm()) for a, b in zip(g1.detach(), g2)]
    return coef * (1 - torch.stack(cos).mean())


def test_fast_at_ga_gradient_is_fgsm_loss_plus_differentiable_regularizer():
    model = small_model()
    x, y = batch()
    coef = 0.5
    _, _, with_reg = run_step(fast_at_ga.step, model, x, y, EPS, coef=coef, seed=11)
    _, _, without = run_step(fast_at_ga.step, model, x, y, EPS, coef=0.0, seed=11)
    torch.manual_seed(11)
    eta = torch.empty_like(x).uniform_(-EPS, EPS)  # the same draw the method makes
    reg = gradalign_direct(model, x, y, eta, coef)
    expected = torch.autograd.grad(reg, list(model.parameters()))
    assert_grads_close([a - b for a, b in zip(with_reg, without)], expected, rtol=1e-7, atol=1e-12)
    assert sum(float(e.norm()) for e in expected) > 0, "the regularizer must reach the parameters"


def test_gradalign_double_backprop_matches_finite_differences():
    model = small_model()
    x, y = batch(n=4)
    torch.manual_seed(2)
    eta = torch.empty_like(x).uniform_(-EPS, EPS)
    params = list(model.parameters())
    g1 = clean_input_grad(model, x, y)  # detached in the method: held fixed here too
    grads = torch.autograd.grad(gradalign_direct(model, x, y, eta, 1.0, g1), params)
    direction = [torch.randn_like(p) for p in params]
    h = 1e-6
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(h * d)
    plus = gradalign_direct(model, x, y, eta, 1.0, g1).item()
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.sub_(2 * h * d)
    minus = gradalign_direct(model, x, y, eta, 1.0, g1).item()
    numeric = (plus - minus) / (2 * h)
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction))
    assert numeric == pytest.approx(analytic, rel=1e-4)


def test_fast_at_ga_matches_the_reference_transcription():
    model = small_model()
    x, y = batch()
    coef = fast_at_ga.defaults(16)["coef"]
    assert coef == pytest.approx(2.0)
    ours = run_step(fast_at_ga.step, model, x, y, 16 / 255, coef=coef, seed=4)
    reference = run_step(fast_at_ga_reference, model, x, y, 16 / 255, coef=coef, seed=4)
    torch.testing.assert_close(ours[0], reference[0])
    assert_grads_close(ours[2], reference[2], rtol=1e-9, atol=1e-12)


def test_gradalign_coefficients_follow_the_shared_table():
    assert fast_at_ga.gradalign_coef(8) == pytest.approx(0.2)
    assert fast_at_ga.gradalign_coef(6) == pytest.approx(0.112)
    assert fast_at_ga.gradalign_coef(24) == pytest.approx(0.02 * 10**3)


# --- FGSM and N-FGSM ----------------------------------------------------------------------------


def input_grad_sign(model, x_adv, y):
    xa = x_adv.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y, reduction="sum"), xa)
    assert (g != 0).float().mean() > 0.5, "the sign must be defined almost everywhere for the test to bite"
    return g.sign()


def ce_param_grads(model, x_adv, y):
    return torch.autograd.grad(F.cross_entropy(model(x_adv), y), list(model.parameters()))


@pytest.mark.parametrize("alpha_factor", [1.0, 0.5])
def test_fgsm_is_one_signed_step_from_zero_clipped_to_the_image(alpha_factor):
    model = small_model()
    x, y = batch()
    recorder = InputRecorder(model)
    _, _, grads = run_step(fgsm.step, recorder, x, y, EPS, alpha_factor=alpha_factor)
    assert torch.equal(recorder.inputs[0], x), "the gradient is taken at x (zero init)"
    expected = (x + alpha_factor * EPS * input_grad_sign(model, x, y)).clamp(0, 1)
    torch.testing.assert_close(recorder.last_input, expected, rtol=0, atol=1e-15)
    assert ((expected - x).abs() < alpha_factor * EPS - 1e-9).float().mean() > 0.1, "the image box must clip somewhere"
    assert_grads_close(grads, ce_param_grads(model, expected, y), rtol=1e-10, atol=1e-13)


def test_fgsm_step_beyond_eps_is_projected_onto_the_ball():
    model = InputRecorder(small_model())
    x, y = batch()
    x = x.clamp(0.2, 0.8)
    fgsm.step(model, x, y, EPS, alpha_factor=1.25)
    torch.testing.assert_close((model.last_input - x).abs().max().item(), EPS)


def n_fgsm_expected(model, x, y, noise_factor, alpha_factor, seed):
    """The same draw as the method, then its perturbation written out."""
    torch.manual_seed(seed)
    noise = torch.empty_like(x).uniform_(-noise_factor * EPS, noise_factor * EPS)
    eta = (x + noise).clamp(0, 1) - x
    delta = (x + eta + alpha_factor * EPS * input_grad_sign(model, x + eta, y)).clamp(0, 1) - x
    return eta, delta


@pytest.mark.parametrize("noise_factor,alpha_factor", [(2.0, 1.0), (1.0, 0.5)])
def test_n_fgsm_perturbation_is_an_unprojected_signed_step_from_noise(noise_factor, alpha_factor):
    model = small_model()
    x, y = batch(n=16)
    recorder = InputRecorder(model)
    _, _, grads = run_step(n_fgsm.step, recorder, x, y, EPS, noise_factor=noise_factor, alpha_factor=alpha_factor)
    eta, delta = n_fgsm_expected(model, x, y, noise_factor, alpha_factor, seed=3)
    torch.testing.assert_close(recorder.inputs[0], x + eta, rtol=0, atol=1e-15)
    torch.testing.assert_close(recorder.last_input, x + delta, rtol=0, atol=1e-15)
    assert_grads_close(grads, ce_param_grads(model, x + delta, y), rtol=1e-10, atol=1e-13)


def test_n_fgsm_noise_fills_k_eps_and_the_step_leaves_the_eps_ball():
    """Away from the image box: eta ~ U(-2 eps, 2 eps), delta = eta + eps * sign(g), |delta| up to 3 eps."""
    model = InputRecorder(small_model())
    x, y = batch(n=32)
    x = x.clamp(0.2, 0.8)  # the box never clips: 0.2 - 3 eps > 0
    torch.manual_seed(7)
    n_fgsm.step(model, x, y, EPS, **resolve_hparams("n_fgsm", 8))
    eta, delta = model.inputs[0] - x, model.last_input - x
    assert eta.abs().max() <= 2 * EPS + 1e-6 and eta.abs().max() >= 1.99 * EPS
    assert eta.abs().mean().item() == pytest.approx(EPS, rel=0.02)  # E|U(-2e, 2e)| = e
    step = delta - eta
    moved = step.abs() > 1e-6
    assert moved.float().mean() > 0.5
    torch.testing.assert_close(step[moved].abs(), torch.full_like(step[moved], EPS), rtol=0, atol=1e-6)
    assert delta.abs().max() >= 2.99 * EPS and delta.abs().max() <= 3 * EPS + 1e-6
    assert (delta.abs() > EPS).float().mean() > 0.3, "not projected back onto the eps-ball"


def test_n_fgsm_clips_to_the_image_box():
    model = InputRecorder(small_model(torch.float32))
    x, y = batch(dtype=torch.float32)  # saturated rows at 0 and 1
    n_fgsm.step(model, x, y, 16 / 255, **resolve_hparams("n_fgsm", 16))
    for seen in model.inputs:
        assert seen.min() >= 0 and seen.max() <= 1
    delta = model.last_input - x
    assert (delta[x == 0] >= 0).all() and (delta[x == 1] <= 0).all()
    assert (delta[x == 0] > 0).any() and (delta[x == 1] < 0).any()


def test_n_fgsm_without_noise_is_fgsm():
    model = small_model()
    x, y = batch()
    ours = run_step(n_fgsm.step, model, x, y, EPS, noise_factor=0.0, alpha_factor=1.0)
    plain = run_step(fgsm.step, model, x, y, EPS, alpha_factor=1.0)
    torch.testing.assert_close(ours[0], plain[0], rtol=0, atol=0)
    assert_grads_close(ours[2], plain[2], rtol=0, atol=0)


def test_fgsm_and_n_fgsm_defaults_are_the_authors():
    assert resolve_hparams("fgsm", 8) == {"alpha_factor": 1.0}
    assert resolve_hparams("n_fgsm", 16) == {"noise_factor": 2.0, "alpha_factor": 1.0}
    assert resolve_hparams("n_fgsm", 8, {"noise_factor": 1, "alpha_factor": 1.25}) == {
        "noise_factor": 1.0,
        "alpha_factor": 1.25,
    }
    with pytest.raises(SuiteError, match="noise_factor"):
        resolve_hparams("n_fgsm", 8, {"noise_factor": -1.0})


@pytest.mark.parametrize("method", ["fgsm", "n_fgsm"])
def test_one_epoch_run_finishes_with_the_method_defaults_recorded(method, tiny_config, tiny_options):
    import dataclasses
    import json

    from suite.engine.trainer import execute

    config = dataclasses.replace(tiny_config, method=method, epochs=1)
    summary = execute(config, tiny_options)
    assert summary["status"] == "finished" and summary["best_epoch"] == 1
    assert 0 <= summary["last"]["ra_pgd"] <= summary["last"]["sa"] <= 100
    saved = json.loads((tiny_options.results_dir / "runs" / summary["run_id"] / "config.json").read_text())
    assert saved["config"]["hparams"] == resolve_hparams(method, 8)


# --- feasibility of the training perturbations -------------------------------------------------


@pytest.mark.parametrize(
    "method,hparams",
    [
        ("fgsm", {}),
        ("fast_at", {}),
        ("pgd", {"steps": 2}),
        ("pgd", {"steps": 10}),
        ("fast_at_ga", {}),
        ("fast_bat", {}),
    ],
)
def test_training_perturbation_stays_feasible_and_uses_the_budget(method, hparams):
    eps255 = 8
    model = InputRecorder(small_model(torch.float32))
    x, y = batch(dtype=torch.float32)
    hp = resolve_hparams(method, eps255, hparams)
    METHODS[method].step(model, x, y, eps255 / 255, **hp)
    delta = model.last_input - x  # the last forward is the training loss at x + delta
    assert delta.abs().max() <= eps255 / 255 + 1e-6
    assert (model.last_input >= 0).all() and (model.last_input <= 1).all()
    assert delta.abs().max() >= 0.99 * eps255 / 255, "the attack should reach the budget somewhere"


def test_fast_at_is_one_signed_step_of_1_25_eps_from_the_random_start():
    model = InputRecorder(small_model(torch.float32))
    x, y = batch(dtype=torch.float32)
    x = x.clamp(0.2, 0.8)  # keep the box inactive to read the step off delta
    METHODS["fast_at"].step(model, x, y, EPS, alpha_factor=1.25)
    delta = model.last_input - x
    # delta = clamp(delta0 + 1.25 eps sign(g)) with delta0 ~ U(-eps, eps): it lands on the boundary
    # when delta0 * sign(g) >= -eps/4 (probability 5/8) and never closer to 0 than eps/4.
    moved = delta[delta != 0]
    on_boundary = ((moved.abs() - EPS).abs() < 1e-6).float().mean().item()
    assert on_boundary == pytest.approx(5 / 8, abs=0.03)
    assert moved.abs().min() >= EPS / 4 - 1e-6


def test_unknown_hyperparameter_is_refused_with_the_valid_names():
    with pytest.raises(SuiteError, match="lmbda"):
        resolve_hparams("fast_at", 8, {"lmbda": 1.0})
    with pytest.raises(SuiteError, match="choose one of"):
        resolve_hparams("nope", 8, {})


def test_pgd_step_sizes_follow_methods_md():
    from suite.methods.pgd import default_alpha

    assert default_alpha(8 / 255, 2) == pytest.approx(4 / 255)
    assert default_alpha(8 / 255, 10) == pytest.approx(2 / 255)


@pytest.mark.parametrize("method", ["fast_bat", "fast_at_ga"])
def test_bf16_autocast_keeps_second_order_gradients_close_to_float32(method):
    """Training runs under bf16 autocast on CUDA; the same code under CPU autocast must stay close to fp32."""
    model = small_model(torch.float32)
    x, y = batch(n=32, dtype=torch.float32)
    hp = resolve_hparams(method, 8, {})
    _, _, full = run_step(METHODS[method].step, model, x, y, EPS, **hp)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        METHODS[method].step(model, x, y, EPS, **hp)
    half = param_grads(model)
    flat = lambda grads: torch.cat([g.flatten().float() for g in grads])  # noqa: E731
    assert F.cosine_similarity(flat(full), flat(half), dim=0) > 0.98


def test_invalid_implicit_mode_is_refused_when_the_config_is_resolved():
    with pytest.raises(SuiteError, match="implicit must be one of exact, finite_diff"):
        resolve_hparams("fast_bat", 8, {"implicit": "fd"})


def test_whole_numbers_resolve_to_the_float_a_float_or_derived_hyperparameter_takes():
    """YAML's 5000 and the command line's 5000.0 are one setting, hence one run id."""
    assert type(resolve_hparams("fast_bat", 8, {"ll_step": 5000})["ll_step"]) is float
    assert type(resolve_hparams("pgd", 8, {"alpha": 2})["alpha"]) is float  # default None: derived
    assert type(resolve_hparams("pgd", 8, {"steps": 2})["steps"]) is int


def test_step_and_noise_factors_reach_the_run_config_from_the_command_line():
    import argparse

    from suite.commands.run import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--method", "n_fgsm", "--noise-factor", "1", "--alpha-factor", "1.25"])
    assert config_from_args(args).resolved().hparams == {"noise_factor": 1.0, "alpha_factor": 1.25}
    args = parser.parse_args(["--method", "fgsm", "--alpha-factor", "0.5"])
    assert config_from_args(args).resolved().hparams == {"alpha_factor": 0.5}
