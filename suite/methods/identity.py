"""What a method's result depends on in code: a hash of its source, so a changed method is never
silently reused.

The hash covers the method's own module and the modules it takes functions from in its own package
or in ``suite.methods`` (Fast-BAT's ``perturbation`` helpers, say): the code its ``step`` runs.
It is taken over the parsed syntax tree without docstrings and without the method's presentation
(its ``HELP``, ``LABEL``, ``COLOR`` and ``SEARCH``), so editing a comment, a docstring, a help text or
the layout leaves a run current, while any change to what the code does makes it stale. Everything else
the suite runs (the trainer, the attacks) is named by the git state in the record instead.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
from types import ModuleType

HASH_CHARS = 16
PRESENTATION = {"HELP", "LABEL", "COLOR", "SEARCH"}  # a method's help, name in reports and tuning ranges


def _semantic_source(source: str) -> str:
    """The syntax tree's dump without docstrings or the module's presentation (``PRESENTATION``):
    blind to comments, docstrings, layout, help texts, labels, colours and search ranges."""
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not _presentation(node)]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


def _presentation(node: ast.stmt) -> bool:
    """A module-level ``HELP = ...`` (or ``LABEL``, ``COLOR``, ``SEARCH``), annotated or not."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return bool(targets) and all(isinstance(t, ast.Name) and t.id in PRESENTATION for t in targets)


def code_modules(module: ModuleType) -> list[ModuleType]:
    """The method's module, then the modules of its own package or of ``suite.methods`` that it
    refers to (as a module or through a function or class taken from one), by name."""
    package = module.__name__.rpartition(".")[0] or module.__name__
    scopes = (package + ".", "suite.methods.")
    found = {}
    for value in vars(module).values():
        source = value if inspect.ismodule(value) else inspect.getmodule(value)
        name = getattr(source, "__name__", "")
        if source is not module and name.startswith(scopes) and getattr(source, "__file__", None):
            found[name] = source
    return [module, *(found[name] for name in sorted(found))]


def module_code(module: ModuleType) -> str:
    """The hash of ``module``'s method code (:func:`code_modules`), ``HASH_CHARS`` hex digits."""
    digest = hashlib.sha256()
    for part in code_modules(module):
        try:
            source = inspect.getsource(part)
        except (OSError, TypeError):  # no source at hand (a compiled-only module): its name stands in
            source = f"# {part.__name__} without source"
        digest.update(part.__name__.encode() + b"\0" + _semantic_source(source).encode() + b"\0")
    return digest.hexdigest()[:HASH_CHARS]


@functools.cache
def method_code(name: str) -> str:
    """The hash of method ``name``'s code as this process has it (read once per process)."""
    from . import get_method

    return module_code(get_method(name))
