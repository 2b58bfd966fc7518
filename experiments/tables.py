"""Paper-ready tables: one `Table`, written as Markdown and as LaTeX (booktabs).

Cells are strings or numbers; numbers are formatted once, the same way in both
outputs (`format_number`): integers as is, floats with `digits` significant
digits, in scientific notation when small or large. In LaTeX the exponent is
typeset as `1.2 \\times 10^{-16}` in math mode.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

Cell = str | int | float


def format_number(value: Cell, digits: int = 3) -> str:
    """`1.234e-16`-style text for a float, `str` for everything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value == 0.0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.{digits}g}"
    return f"{value:.{digits - 1}e}"


_EXPONENT = re.compile(r"^(-?[0-9.]+)e([+-])0*([0-9]+)$")
_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}"}


def _latex_text(text: str) -> str:
    """Escape LaTeX specials outside `$...$` spans (math spans pass through)."""
    parts = text.split("$")
    for i in range(0, len(parts), 2):
        parts[i] = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in parts[i])
    return "$".join(parts)


def _latex_cell(value: Cell, digits: int) -> str:
    text = format_number(value, digits)
    if isinstance(value, float) and not isinstance(value, bool):
        match = _EXPONENT.match(text)
        if match:
            mantissa, sign, exponent = match.groups()
            sign = "-" if sign == "-" else ""
            return f"${mantissa} \\times 10^{{{sign}{exponent}}}$"
        return f"${text}$"
    return _latex_text(text)


@dataclass(frozen=True)
class Table:
    """A table: `columns` (header strings) and `rows` (one sequence of cells per row).

    `caption` and `label` are used by the LaTeX output; `digits` is the number
    of significant digits of floats.

    Example:
        >>> table = experiments.Table(["method", "error"], [["least action", 3.1e-16], ["finite differences", 2.5e-7]],
        ...                           caption="Relative error", label="tab:error")
        >>> print(table.markdown())
        **Relative error**
        <BLANKLINE>
        | method | error |
        |:---|---:|
        | least action | 3.10e-16 |
        | finite differences | 2.50e-07 |
        <BLANKLINE>
    """

    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    caption: str = ""
    label: str = ""
    digits: int = 3
    align: str = field(default="")

    def __post_init__(self):
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table row {i} has {len(row)} cells but there are {len(self.columns)} columns"
                )

    def markdown(self) -> str:
        """A GitHub-flavoured Markdown table (numbers right-aligned)."""
        cells = [[format_number(c, self.digits) for c in row] for row in self.rows]
        header = "| " + " | ".join(self.columns) + " |"
        rule = "|" + "|".join(
            "---:" if self._numeric(j) else ":---" for j in range(len(self.columns))
        ) + "|"
        body = ["| " + " | ".join(row) + " |" for row in cells]
        lines = [header, rule, *body]
        if self.caption:
            lines = [f"**{self.caption}**", "", *lines]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        """A `table` environment with a booktabs `tabular` (`\\toprule`, `\\midrule`, `\\bottomrule`)."""
        align = self.align or "".join("r" if self._numeric(j) else "l" for j in range(len(self.columns)))
        header = " & ".join(_latex_text(c) for c in self.columns) + r" \\"
        body = [" & ".join(_latex_cell(c, self.digits) for c in row) + r" \\" for row in self.rows]
        lines = [r"\begin{table}[ht]", r"\centering"]
        if self.caption:
            lines.append(rf"\caption{{{_latex_text(self.caption)}}}")
        if self.label:
            lines.append(rf"\label{{{self.label}}}")
        lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule", header, r"\midrule", *body]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"

    def save(self, directory: Path, stem: str) -> list[Path]:
        """Write `directory/stem.md` and `directory/stem.tex`; return both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        md, tex = directory / f"{stem}.md", directory / f"{stem}.tex"
        md.write_text(self.markdown(), encoding="utf-8")
        tex.write_text(self.latex(), encoding="utf-8")
        return [md, tex]

    def _numeric(self, j: int) -> bool:
        column = [row[j] for row in self.rows]
        return bool(column) and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in column
        )
