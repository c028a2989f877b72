"""Fast-BAT reproduction suite: fast adversarial training, evaluated and compared.

From Python::

    from suite import RunConfig, RunOptions, execute, load_runs
    summary = execute(RunConfig(method="fast_at", eps=8, epochs=2))
    runs = load_runs("results", method="fast_at")      # one row per run record (pandas)
"""

__version__ = "0.1.0"

_PUBLIC = {
    "RunConfig": ("suite.config", "RunConfig"),
    "RunOptions": ("suite.config", "RunOptions"),
    "execute": ("suite.engine", "execute"),
    "load_runs": ("suite.store", "runs_dataframe"),
    "SuiteError": ("suite.errors", "SuiteError"),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    """The public names are imported on first use: ``import suite`` stays cheap (no torch)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'suite' has no attribute {name!r}")
    import importlib

    module, attr = _PUBLIC[name]
    return getattr(importlib.import_module(module), attr)
