"""Labels and colours come from the method files; methods without a colour get distinct, stable ones."""

import subprocess
import sys

from suite.methods import METHODS
from suite.report import palette

# the labels and colours of the committed reports
COMMITTED = {
    "standard": ("Standard", "#7f7f7f"),
    "pgd": ("PGD-AT", "#9467bd"),
    "fgsm": ("FGSM", "#8c564b"),
    "fast_at": ("Fast-AT", "#d62728"),
    "n_fgsm": ("N-FGSM", "#2ca02c"),
    "fast_at_ga": ("Fast-AT-GA", "#ff7f0e"),
    "fast_bat": ("Fast-BAT", "#1f77b4"),
}


def test_built_ins_keep_the_committed_labels_colours_and_order():
    assert {m: (palette.method_label(m), palette.color(m)) for m in METHODS} == COMMITTED
    assert sorted(palette.METHOD_ORDER) == sorted(METHODS)
    assert not set(palette.SPARE_COLORS) & {c for _, c in COMMITTED.values()}
    assert len(set(palette.SPARE_COLORS)) == len(palette.SPARE_COLORS)


def test_a_plugin_declares_its_label_and_colour(tmp_path, monkeypatch):
    (tmp_path / "declared_pkg").mkdir()
    (tmp_path / "declared_pkg" / "__init__.py").write_text("")
    (tmp_path / "declared_pkg" / "meth.py").write_text(
        "LABEL = 'My FGSM'\nCOLOR = 'tab:cyan'\ndef defaults(eps):\n    return {}\n"
        "def step(model, x, y, eps):\n    return None, None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    palette.method_module.cache_clear()
    assert palette.method_label("declared_pkg.meth") == "My FGSM"
    assert palette.color("declared_pkg.meth") == "tab:cyan"
    # a method that does not resolve here (not installed) keeps its name and a spare colour
    assert palette.method_label("not_installed_meth") == "not_installed_meth"
    assert palette.color("not_installed_meth") in palette.SPARE_COLORS


def test_undeclared_colours_are_stable_across_processes_and_distinct_in_one_report():
    code = "from suite.report.palette import color; print(color('mypkg.a'), color('mypkg.b'))"
    here = palette.color("mypkg.a"), palette.color("mypkg.b")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert tuple(there) == here  # not Python's salted hash()
    # names that hash to one spare colour get different ones inside distinct(), the same set alike each time
    names = [f"m{i}" for i in range(40)]
    clash = next((a, b) for a in names for b in names if a < b and palette.hashed_color(a) == palette.hashed_color(b))
    with palette.distinct([*clash, "fast_at"]):
        inside = [palette.color(m) for m in clash]
        assert len(set(inside)) == 2 and palette.color("fast_at") == COMMITTED["fast_at"][1]
    with palette.distinct(list(reversed(clash))):
        assert [palette.color(m) for m in clash] == inside
    assert palette.color(clash[1]) == palette.hashed_color(clash[1])  # outside: the hashed one again
