"""The training methods, one small module each, and their registry.

A method module provides

* ``defaults(eps) -> dict``: its hyperparameters (perturbation sizes in /255) for training eps
  given in /255, every one overridable from the command line or a sweep spec (None: derived
  by the method from the others);
* optionally ``validate(hparams)``: raise SuiteError for values it cannot use (every number is
  already checked to be finite and not negative, and an integer where its default is one);
* optionally ``PRECISION``: ``"fp32"`` where bf16 autocast and TF32 on CUDA move its gradient
  further than its own sampling noise does (``suite bench --only precision``), ``"mixed"`` where
  only its second-order term needs float32 (bf16 autocast for every other pass; see
  ``suite.engine.device.training_autocast``); default ``"bf16"``;
* ``step(model, x, y, eps, **hparams) -> (loss, logits)``: accumulate the parameter gradients
  of one batch (``eps`` in pixel units, x in [0, 1]); the training loop owns the optimizer step.

and, all optional (read by :mod:`.metadata`, with the fallback in brackets):

* ``HELP = {hparam: "one line"}`` next to ``defaults``: the help of its ``suite run`` flag, which
  adds the default from ``defaults`` itself [no text];
* ``CHOICES = {hparam: ("a", "b")}``: the values a text hyperparameter may take [any text];
* ``LABEL = "Fast-BAT"``: its name in tables and legends [the method's name];
* ``COLOR = "#1f77b4"``: its colour in every figure, any matplotlib colour [one derived from its
  name, distinct from the built-ins' colours and stable across figures and runs];
* ``FEASIBLE = True``: the input its step trains on (the one its logits are of) lies in the
  eps-ball around x and in [0, 1], as the contract test checks [False: not promised];
* ``SEARCH = {hparam: [low, high]}``: ``suite tune``'s search when a study spec gives none,
  log-uniform, or ``{low, high, log}`` [a study spec must give one];
* ``COUPLED = {target: (source, function, "formula")}``: what a study with ``coupled: true``
  derives from a searched hyperparameter instead of searching it (Fast-BAT: ``ll_step`` =
  255/``lmbda``) [nothing to couple];
* ``SYMBOLS = {hparam: "λ"}``: how the tuning figure writes it [its name].

Adding a method: write ``suite/methods/<name>.py`` and add it to ``METHODS`` below; or keep it
outside the suite as a plug-in (a dotted module path, or an entry point of group ``suite.methods``;
see :mod:`suite.methods.plugins` and docs/methods.md).
"""

from types import ModuleType

from ..config.checks import check_number
from ..errors import SuiteError, unknown_name
from . import fast_at, fast_at_ga, fast_bat, fgsm, n_fgsm, pgd, standard

METHODS: dict[str, ModuleType] = {
    "standard": standard,
    "fgsm": fgsm,
    "fast_at": fast_at,
    "n_fgsm": n_fgsm,
    "fast_at_ga": fast_at_ga,
    "pgd": pgd,
    "fast_bat": fast_bat,
}


ENTRY_POINT_GROUP = "suite.methods"


def plugin_names() -> dict[str, str]:
    """Installed packages' methods: entry-point name -> module path (read only when asked, so that
    start-up does not pay for scanning the installed distributions)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _import_method(name: str, module_path: str) -> ModuleType:
    import importlib

    from .plugins import add_cwd_for

    add_cwd_for(module_path)
    try:
        module = importlib.import_module(module_path)
    except Exception as error:  # any import failure is the plug-in's, told in one line
        raise SuiteError(f"method {name!r}: cannot import module {module_path!r} ({type(error).__name__}: {error})")
    missing = [attr for attr in ("defaults", "step") if not callable(getattr(module, attr, None))]
    if missing:
        raise SuiteError(f"method {name!r}: module {module_path!r} lacks {', '.join(missing)}; see docs/methods.md")
    return module


def get_method(name: str) -> ModuleType:
    """A built-in method, an entry point of group ``suite.methods``, or a dotted module path, resolved
    alike in every process (the record holds the name, so a fresh worker resolves it again)."""
    if name in METHODS:
        return METHODS[name]
    plugins = plugin_names()
    clashes = sorted(set(plugins) & set(METHODS))
    if clashes:
        raise SuiteError(f"plug-in method name {clashes[0]!r} clashes with a built-in method; rename its entry point")
    if name in plugins:
        return _import_method(name, plugins[name])
    if "." in name:
        return _import_method(name, name)
    raise unknown_name("method", name, available_names())


def available_names() -> list[str]:
    """Every method name a user may write without a dotted path: the built-ins, then the installed
    plug-ins' entry points (this scans the installed distributions: call it only for a message)."""
    return [*METHODS, *(name for name in plugin_names() if name not in METHODS)]


def check_name(name: str, what: str = "method") -> None:
    """Refuse a method name that cannot name a method, without importing anything: a built-in, an
    entry point or a dotted path passes (for filters over records, whose plug-ins may be gone)."""
    if name in METHODS or "." in str(name):
        return
    plugins = plugin_names()
    if name not in plugins:
        raise unknown_name(what, name, available_names())


def resolve_hparams(name: str, eps: float, overrides: dict | None = None) -> dict:
    """The method's defaults at training eps (in /255), updated with the user's overrides."""
    defaults = get_method(name).defaults(eps)
    hparams = dict(defaults)
    unknown = set(overrides or {}) - set(hparams)
    if unknown:
        known = ", ".join(sorted(hparams)) or "none"
        raise SuiteError(
            f"method {name!r} has no hyperparameter {', '.join(sorted(unknown))}; its hyperparameters: {known}"
        )
    for key, value in (overrides or {}).items():
        if value is not None:
            default = hparams[key]
            # 10 and 10.0 are one setting (one run id): numbers take a float default's type, and a
            # derived (None) default is a number in /255, a float too.
            numeric = isinstance(value, int) and not isinstance(value, bool)
            hparams[key] = float(value) if numeric and (default is None or isinstance(default, float)) else value
    getattr(get_method(name), "validate", lambda hp: None)(hparams)
    for key, value in hparams.items():  # numbers: finite, not negative, integers where the default is one
        if value is not None and not isinstance(value, str):
            check_number(
                f"{name} hyperparameter {key}",
                value,
                minimum=0,
                integer=isinstance(defaults[key], int) and not isinstance(defaults[key], bool),
            )
    return hparams


PRECISIONS = ("bf16", "mixed", "fp32")


def precision(name: str) -> str:
    """What the method's training step computes in on CUDA: "bf16" (autocast, TF32), "mixed" (autocast
    but float32 second-order passes, no TF32) or "fp32" (neither)."""
    value = getattr(get_method(name), "PRECISION", "bf16")
    if value not in PRECISIONS:
        raise SuiteError(f"method {name!r} declares PRECISION = {value!r}; use one of {', '.join(PRECISIONS)}")
    return value
