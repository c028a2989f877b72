"""Tables as LaTeX ``tabular`` environments with booktabs rules, ready to ``\\input`` in a paper.

pandas' ``Styler.to_latex`` lays the table out (``\\toprule``, ``\\midrule``, ``\\bottomrule``,
``\\multicolumn`` over a two-level header); the text of every cell and header is escaped here
first, with the report's few non-ASCII signs (±, ε, β, —, ...) turned into their LaTeX forms, and a
marked cell (:class:`suite.report.tables.Mark`) set in bold (best) or italics (tied with the best).
The output needs ``\\usepackage{booktabs}``.
"""

from __future__ import annotations

import re

import pandas as pd

SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
SIGNS = {
    "±": r"$\pm$",
    "ε": r"$\varepsilon$",
    "β": r"$\beta$",
    "λ": r"$\lambda$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "·": r"$\cdot$",
    "—": "---",
    "–": "--",
    "−": "$-$",
}
MARKS = {"best": r"\textbf{%s}", "tied": r"\textit{%s}"}
NUMBER = re.compile(r"^[-+]?\d")


def text(value) -> str:
    """``value`` as LaTeX text: special characters escaped, the report's signs in math mode."""
    return "".join(SPECIAL.get(c) or SIGNS.get(c) or c for c in str(value))


def cell(value) -> str:
    """A cell as LaTeX: its text, in the form of its mark if it has one."""
    kind = getattr(value, "kind", None)
    return MARKS[kind] % text(value) if kind in MARKS else text(value)


def _align(column: pd.Series) -> str:
    values = [str(v) for v in column if str(v) not in ("", "—")]
    return "r" if values and all(NUMBER.match(v) for v in values) else "l"


def tabular(frame: pd.DataFrame, comment: str = "") -> str:
    """``frame`` (flat or two-level columns) as a booktabs ``tabular``; numeric columns right-aligned.
    ``comment`` goes first, as ``%`` lines."""
    frame = frame.copy()
    align = "".join(_align(frame[c]) for c in frame.columns)
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = pd.MultiIndex.from_tuples([tuple(text(level) for level in c) for c in frame.columns])
    else:
        frame.columns = [text(c) for c in frame.columns]
    body = frame.map(cell).style.hide(axis="index").to_latex(hrules=True, column_format=align, multicol_align="c")
    head = "".join(f"% {line}\n" for line in comment.splitlines())
    return head + "% needs \\usepackage{booktabs}\n" + body
