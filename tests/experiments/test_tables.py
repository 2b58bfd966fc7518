"""Tables written as Markdown and booktabs LaTeX."""

from __future__ import annotations

import pytest

from experiments.tables import Table, format_number


pytestmark = pytest.mark.smoke


def test_format_number():
    assert format_number(0.0) == "0"
    assert format_number(1.234567e-16) == "1.23e-16"
    assert format_number(0.4942) == "0.494"
    assert format_number(12) == "12"
    assert format_number("W") == "W"


def test_markdown_and_latex(tmp_path):
    table = Table(["parameter", "rel. error"], [["W_1", 1.5e-16], ["b", 0.0]], caption="50% check",
                  label="tab:x")
    md = table.markdown()
    assert "| parameter | rel. error |" in md and "|:---|---:|" in md and "| W_1 | 1.50e-16 |" in md
    tex = table.latex()
    assert r"\begin{tabular}{lr}" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"W\_1 & $1.50 \times 10^{-16}$ \\" in tex
    assert r"\caption{50\% check}" in tex and r"\label{tab:x}" in tex
    md_path, tex_path = table.save(tmp_path / "tables", "check")
    assert md_path.read_text() == md and tex_path.read_text() == tex


def test_ragged_rows_are_rejected():
    with pytest.raises(ValueError, match="row 0 has 1 cells but there are 2 columns"):
        Table(["a", "b"], [[1]])
