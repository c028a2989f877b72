"""Plug-in methods for the tests: a package written into a folder, and an entry point registered
by a ``*.dist-info`` folder beside it (what ``pip install`` writes; importlib.metadata reads it
from any folder on ``sys.path``)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

# a method with a hyperparameter no built-in has: the cross-entropy of the clean batch, times gamma
PLUGIN_SOURCE = """
import torch.nn.functional as F

def defaults(eps):
    return {"gamma": 1.0}

def step(model, x, y, eps, *, gamma):
    logits = model(x)
    loss = gamma * F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
"""


PACKAGES = ("plugpkg", "eppkg", "cwdpkg", "brokenpkg", "my_method")  # the tests' plug-in packages


@pytest.fixture(autouse=True)
def forget_plugin_modules():
    """Each test imports its plug-ins afresh from its own folder: a module imported by an earlier
    test (from that test's folder) is dropped from ``sys.modules`` afterwards."""
    yield
    for name in [name for name in sys.modules if name.split(".")[0] in PACKAGES]:
        del sys.modules[name]


def write_plugin(folder: Path, package: str = "plugpkg", module: str = "meth", source: str = PLUGIN_SOURCE) -> str:
    """``folder/package/module.py``; returns its dotted path."""
    pkg = Path(folder) / package
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / f"{module}.py").write_text(textwrap.dedent(source).lstrip())
    return f"{package}.{module}"


def write_entry_points(folder: Path, points: dict[str, str], dist: str = "plugdist") -> Path:
    """A distribution ``dist`` in ``folder`` registering ``points`` (name -> module) in group suite.methods."""
    info = Path(folder) / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in points.items())
    (info / "entry_points.txt").write_text(f"[suite.methods]\n{lines}")
    return info
