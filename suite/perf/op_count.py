"""How many aten operations one training step dispatches: a proxy for a GPU step's kernel launches.

On a GPU a small-batch step is launch-bound: eagerly every operation is a host round trip, and
even replayed from a CUDA graph every kernel node costs a few microseconds of its own. The count
is taken below autograd (a ``TorchDispatchMode`` sees every operation of the forward and of each
backward pass, after composite operations are decomposed), so it is the same on any device for
the same precision. Views (``view``, ``detach``, ``alias``, ...) launch no kernel and are counted
apart. A proxy only: it weighs a per-channel scalar operation like a pass over the activations;
the GPU check measures the time.
"""

from __future__ import annotations

import collections

from torch.utils._python_dispatch import TorchDispatchMode


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched inside it, by name, views apart."""

    def __init__(self):
        super().__init__()
        self.by_op = collections.Counter()
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.by_op[str(func.overloadpacket)] += 1
        if is_view(func):
            self.views += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.by_op.values())

    def summary(self, top: int = 8) -> dict:
        return {"total": self.total, "kernels": self.total - self.views, "top": dict(self.by_op.most_common(top))}


def is_view(func) -> bool:
    """Whether an operation returns a view of an input (no kernel): an alias that is not written."""
    return any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns)


def count_ops(fn) -> dict:
    """``{"total", "kernels" (views excluded), "top"}`` of the aten operations one call of ``fn`` dispatches."""
    with OpCounter() as counter:
        fn()
    return counter.summary()
