"""A network and its weights for ``suite eval``: a built-in arch or ``pkg.module:factory``, weights
from a checkpoint loaded with ``weights_only=True`` (nothing in the file runs), checked key by key."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path

import torch

from ..errors import SuiteError
from ..store import load_checkpoint


def read_state_dict(path: Path) -> dict:
    """The weights in ``path``: a plain state_dict, or one under a ``model`` or ``state_dict`` key
    (the common formats, the suite's own included), with DataParallel's ``module.`` prefix stripped."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"no checkpoint file {path}; give the path of a saved state_dict (.pt)")
    state = load_checkpoint(path)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise SuiteError(
            f"{path} is not a checkpoint of weights: expected a state_dict (names to tensors), "
            f"or a dict holding one under 'model' or 'state_dict'"
        )
    if all(str(k).startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def file_digest(path: Path, arch: str) -> str:
    """A short hash of a checkpoint file's bytes and its arch: the identity of an external model."""
    h = hashlib.sha256(Path(path).read_bytes())
    h.update(b"\0" + arch.encode())
    return h.hexdigest()[:10]


def build_network(arch: str, info, dropout=None) -> torch.nn.Module:
    """A built-in arch (:func:`suite.models.build_model`, unknown names get a did-you-mean), or
    ``pkg.module:factory``: a callable returning an nn.Module, given ``num_classes`` when it takes it."""
    if ":" not in arch:
        from ..models import build_model

        return build_model(arch, info.in_channels, info.num_classes, info.mean, info.std, dropout=dropout)
    module_name, _, attr = arch.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except ImportError as err:
        raise SuiteError(f"cannot import {module_name} for --arch {arch} ({err}); is it on PYTHONPATH?") from err
    except AttributeError as err:
        raise SuiteError(f"module {module_name} has no {attr!r} (--arch {arch})") from err
    try:
        takes = "num_classes" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = False
    model = factory(num_classes=info.num_classes) if takes else factory()
    if not isinstance(model, torch.nn.Module):
        raise SuiteError(f"--arch {arch} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def load_weights(model: torch.nn.Module, state: dict, path: Path, arch: str) -> None:
    """Load ``state`` into ``model``, refusing with one line that names the first missing, unexpected
    or mismatching key (with both shapes)."""
    own = model.state_dict()
    for key, value in own.items():
        if key not in state:
            raise SuiteError(f"{path} has no weights for {key!r} of --arch {arch}; is it a checkpoint of that network?")
        if tuple(state[key].shape) != tuple(value.shape):
            raise SuiteError(
                f"{path}: {key!r} has shape {tuple(state[key].shape)} but --arch {arch} expects {tuple(value.shape)}"
            )
    extra = [k for k in state if k not in own]
    if extra:
        raise SuiteError(f"{path} holds {extra[0]!r}, which --arch {arch} has not; is it a checkpoint of that network?")
    model.load_state_dict(state)


def check_classes(model: torch.nn.Module, x: torch.Tensor, num_classes: int, dataset: str) -> None:
    """Refuse a model whose outputs are not one logit per class of the data set."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(x[:1])
    model.train(was_training)
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise SuiteError(
            f"the model outputs {tuple(out.shape[1:])} per point but {dataset} has {num_classes} classes; "
            f"check --arch and --dataset"
        )
