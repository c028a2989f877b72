"""The training engine: one configuration in, one durable run record out (:func:`execute`).

The names below are imported on first use: the evaluation attacks use :mod:`.cuda_graphs`, and
the trainer uses the evaluation attacks.
"""

_PUBLIC = {
    "execute": "trainer",
    "Trainer": "trainer",
    "RunData": "trainer",
    "Callback": "callbacks",
    "RunPruned": "callbacks",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'suite.engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"suite.engine.{_PUBLIC[name]}"), name)
