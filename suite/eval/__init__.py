"""Evaluation: clean accuracy, PGD-k-r and AutoAttack."""

from .autoattack import autoattack_accuracy
from .clean import clean_accuracy
from .pgd import pgd_broken, pgd_robust, robust_accuracy

__all__ = ["clean_accuracy", "robust_accuracy", "pgd_robust", "pgd_broken", "autoattack_accuracy"]
