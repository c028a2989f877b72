"""Fast-BAT reproduction suite: fast adversarial training, evaluated and compared."""

__version__ = "0.1.0"
