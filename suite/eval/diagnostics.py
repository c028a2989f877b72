"""Catastrophic-overfitting diagnostics logged every epoch on a fixed set of training points."""

import torch
import torch.nn.functional as F

from ..methods.perturbation import input_grad, project, uniform_init, uniform_noise


def co_diagnostics(model, x, y, eps: float, steps: int = 10) -> dict:
    """PGD accuracy on (x, y), the cosine between FGSM and PGD perturbations, and GradAlign's cosine.

    * ``train_pgd_acc``: accuracy in percent under PGD-``steps`` (step eps/4, uniform start);
    * ``fgsm_pgd_cos``: mean cosine between the FGSM perturbation eps * sign(grad at x) and the
      PGD perturbation; it falls when the loss surface stops being linear (CO);
    * ``grad_align_cos``: mean cosine between the input gradients at x and at x + U(-eps, eps).
    """
    was_training = model.training
    model.eval()
    grad_clean, _ = input_grad(model, x, y)
    eta = uniform_noise(x, -eps, eps)
    grad_noisy, _ = input_grad(model, (x + eta).clamp(0, 1), y)
    fgsm = project(eps * grad_clean.sign(), x, eps)
    delta = uniform_init(x, eps)
    for _ in range(steps):
        grad, _ = input_grad(model, x + delta, y)
        delta = project(delta + eps / 4 * grad.sign(), x, eps)
    with torch.no_grad():
        acc = (model(x + delta).argmax(1) == y).float().mean().item()
    model.train(was_training)
    cos = lambda a, b: F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=1e-12).mean().item()  # noqa: E731
    return {
        "train_pgd_acc": 100.0 * acc,
        "fgsm_pgd_cos": cos(fgsm, delta),
        "grad_align_cos": cos(grad_clean, grad_noisy),
    }
