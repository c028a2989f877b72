"""Where plug-in methods are imported from, so that every process finds them alike.

A plug-in method is a module outside the suite: a dotted path (``--method mypkg.my_fgsm``) or an
entry point of group ``suite.methods``. The process that launches a sweep resolves it, but its
jobs are fresh processes (submitit's local jobs, Slurm jobs): they inherit the environment
(``PYTHONPATH``) and the working directory, not changes the launcher made to ``sys.path`` (a
Python caller, or :func:`add_cwd_for` below). :func:`import_paths` names the ``sys.path`` entries
the sweep's plug-ins were found in, the job function passes them on, and :func:`add_import_paths`
appends the missing ones in the job before any method is resolved.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path


def add_cwd_for(module_path: str) -> None:
    """Let a dotted path name a package in the working directory, as ``python -m`` would: the
    ``suite`` script's ``sys.path`` starts at its own folder, not at the working directory. The
    directory is appended (it never shadows an installed module), and only when the top-level
    package is nowhere else on the path and is there."""
    top = module_path.split(".")[0]
    cwd = os.getcwd()
    if not top.isidentifier() or cwd in sys.path or "" in sys.path:
        return
    if (Path(cwd) / top).is_dir() or (Path(cwd) / f"{top}.py").is_file():
        try:
            if importlib.util.find_spec(top) is not None:
                return
        except (ImportError, ValueError):
            return
        sys.path.append(cwd)


def _entry_of(location: str) -> str:
    """The folder (absolute) holding ``location``, a top-level package or module: its ``sys.path`` entry."""
    return str(Path(location).resolve().parent)


def import_paths(names) -> list[str]:
    """The ``sys.path`` entries a process needs to resolve the methods ``names`` (built-ins need
    none): each plug-in's top-level package's folder, and an entry point's distribution's."""
    from . import ENTRY_POINT_GROUP, METHODS

    names = [name for name in dict.fromkeys(names) if name not in METHODS]
    if not names:
        return []
    from importlib.metadata import entry_points

    points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    paths = []
    for name in names:
        module_path = points[name].value if name in points else name
        if name in points and getattr(points[name], "dist", None) is not None:
            paths.append(str(Path(points[name].dist.locate_file("")).resolve()))
        add_cwd_for(module_path)
        try:
            spec = importlib.util.find_spec(module_path.split(".")[0])
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue  # resolving the method says why, in one line
        locations = list(spec.submodule_search_locations or []) or ([spec.origin] if spec.origin else [])
        paths += [_entry_of(location) for location in locations]
    return list(dict.fromkeys(paths))


def add_import_paths(paths) -> None:
    """Append the entries of ``paths`` this process's ``sys.path`` lacks (a job's first step)."""
    missing = [path for path in paths or () if path not in sys.path]
    if missing:
        sys.path.extend(missing)
        importlib.invalidate_caches()


def method_source(name: str) -> dict | None:
    """Where a plug-in method came from, for its run record (None for a built-in): the entry point
    and its distribution (name and version) when it is one, and the ``sys.path`` entries a process
    needs to import it again (:func:`import_paths`)."""
    from . import ENTRY_POINT_GROUP, METHODS, plugin_names

    if name in METHODS:
        return None
    source = {"entry_point": None, "distribution": None, "import_paths": import_paths([name])}
    if name in plugin_names():
        from importlib.metadata import entry_points

        point = next(ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name)
        dist = getattr(point, "dist", None)
        source.update(
            entry_point=f"{point.name} = {point.value}",
            distribution=f"{dist.metadata['Name']} {dist.version}" if dist is not None else None,
        )
    return source
