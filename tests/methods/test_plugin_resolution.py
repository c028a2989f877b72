"""Methods from outside the built-in registry: dotted module paths, with one-line refusals."""

import pytest

from suite.errors import SuiteError
from suite.methods import get_method


def test_dotted_path_resolves_a_module_on_the_path(tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "meth.py").write_text(
        "def defaults(eps):\n    return {'gamma': 1.0}\n\ndef step(model, x, y, eps, gamma):\n    return None, None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = get_method("mypkg.meth")
    assert module.defaults(8.0) == {"gamma": 1.0}


def test_import_error_and_missing_protocol_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(SuiteError, match="cannot import module 'no_such_pkg.meth'"):
        get_method("no_such_pkg.meth")
    pkg = tmp_path / "badpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "meth.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SuiteError, match="lacks defaults, step"):
        get_method("badpkg.meth")


def test_unknown_name_keeps_did_you_mean():
    with pytest.raises(SuiteError, match="fast_bat"):
        get_method("fastbat")
