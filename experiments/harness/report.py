"""What a comparison looks like: terminal tables, paper tables and the heat map.

Everything here reads the results dict (`Comparison.as_dict()`, i.e. what
`results.json` holds), so a saved folder can be re-rendered without re-running.

- `matrix(results, key)`: method x problem array of an error (NaN where absent);
- `long_table`, `matrix_table`, `continuous_table`, `not_applicable_table`: `Table`s
  (Markdown + booktabs LaTeX);
- `heatmap`: the figure, log10 relative error against the reference (left) and
  against the continuous gradient for the ODE problems (right);
- `terminal`: rich renderables for the command line.
"""

from __future__ import annotations

import math

import numpy as np

from ..tables import Table, format_number

STATUS_STYLE = {
    "pass": "green", "fail": "bold red", "error": "bold red", "reported": "yellow",
    "no-reference": "magenta", "n/a": "dim",
}
FLOOR = 1e-17
"""Errors below this (exact zeros) are drawn at this value."""


def cell_label(error: float) -> str:
    """The text in a heat-map cell: `"exact"` for an error of exactly zero, otherwise the
    decimal exponent `round(log10 error)` (`"0"` for errors from 0.32 to 3.2, never `"-0"`),
    read from the error itself, not from the value drawn (errors below `FLOOR` keep their
    exponent).

    Example:
        >>> [cell_label(e) for e in (0.0, 1.0, 0.5, 2e-13, 3e-19)]
        ['exact', '0', '0', '-13', '-19']
    """
    if error == 0.0:
        return "exact"
    return str(int(round(math.log10(error))))


def _cells(results) -> dict[tuple[str, str], dict]:
    return {(c["method"], c["problem"]): c for c in results["cells"]}


def _error(cell: dict, key: str) -> float | None:
    block = cell.get(key)
    return None if block is None else block.get("relative_l2_error")


def matrix(results: dict, key: str = "errors") -> np.ndarray:
    """`M[i, j]`: relative L2 error of method `i` on problem `j` (`key`: ``errors`` against
    the reference, ``continuous`` against the continuous gradient); NaN where absent."""
    cells = _cells(results)
    methods, problems = list(results["methods"]), list(results["problems"])
    out = np.full((len(methods), len(problems)), np.nan)
    for i, m in enumerate(methods):
        for j, p in enumerate(problems):
            value = _error(cells[(m, p)], key)
            if value is not None:
                out[i, j] = value
    return out


def _ode_problems(results) -> list[str]:
    return [p for p, info in results["problems"].items() if info.get("continuous_reference")]


def _evals(cell: dict) -> str | int:
    ev = cell.get("evaluations") or {}
    parts = [ev.get(k) for k in ("f", "vjp", "jvp")]
    if not ev or any(v is None for v in parts):
        return "--"
    return int(sum(parts))


def _ms(cell: dict) -> float | str:
    timing = cell.get("timing")
    return 1e3 * timing["median_seconds"] if timing else "--"


def _cell_value(value) -> float | str:
    return "--" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def long_table(results: dict) -> Table:
    """One row per (method, problem): status, errors, timing, evaluations."""
    rows = []
    for c in results["cells"]:
        if c["status"] == "n/a":
            rows.append([c["method"], c["problem"], "n/a", "--", "--", "--", "--", "--", "--", "--", "--"])
            continue
        e = c.get("errors") or {}
        rows.append([
            c["method"], c["problem"], c["status"],
            _cell_value(e.get("relative_l2_error")), _cell_value(e.get("max_abs_error")),
            _cell_value(e.get("cosine_similarity")), _cell_value(e.get("norm_ratio")),
            _cell_value(_error(c, "continuous")),
            _cell_value(c.get("tolerance")), _ms(c), _evals(c),
        ])
    return Table(
        columns=["method", "problem", "status", "rel. L2 error", "max abs error", "cosine", "norm ratio",
                 "vs continuous", "tolerance", "time [ms]", "evaluations"],
        rows=rows,
        caption=(f"Gradient methods against {results['reference']} of the same discretisation "
                 f"({results['dtype']}); 'vs continuous': relative L2 error against the continuous "
                 "gradient (closed form, or the adjoint ODE by scipy DOP853 at 1e-13); time: median of warm compiled calls; "
                 "evaluations: f (or layer) evaluations + VJPs + JVPs"),
        label="tab:compare-long",
    )


def _matrix_table(results, key, problems, caption, label) -> Table:
    cells = _cells(results)
    rows = []
    for m in results["methods"]:
        row: list = [m]
        for p in problems:
            c = cells[(m, p)]
            value = _error(c, key)
            row.append("n/a" if c["status"] == "n/a" else ("--" if value is None else value))
        rows.append(row)
    return Table(columns=["method", *problems], rows=rows, caption=caption, label=label, digits=2)


def matrix_table(results: dict) -> Table:
    """Method x problem: relative L2 error against the reference."""
    return _matrix_table(
        results, "errors", list(results["problems"]),
        f"Relative L2 error against {results['reference']} of the same discretisation ({results['dtype']})",
        "tab:compare-matrix",
    )


def continuous_table(results: dict) -> Table:
    """Method x ODE problem: relative L2 error against the continuous gradient."""
    return _matrix_table(
        results, "continuous", _ode_problems(results),
        f"Relative L2 error against the continuous gradient ({results['dtype']}): the exact methods "
        "show the discretisation error of their scheme; BacksolveAdjoint also its backward-solve error",
        "tab:compare-continuous",
    )


def not_applicable_table(results: dict) -> Table:
    """Every n/a (or no-reference, or error) pair with its reason."""
    rows = [[c["method"], c["problem"], c["status"], c.get("reason") or ""]
            for c in results["cells"] if c["status"] in ("n/a", "no-reference", "error")]
    return Table(columns=["method", "problem", "status", "reason"], rows=rows,
                 caption="Pairs not compared, and why", label="tab:compare-not-applicable")


def heatmap(results: dict):
    """Method x problem heat map of log10 relative L2 error (n/a cells grey, failures outlined)."""
    from matplotlib.patches import Rectangle

    from .. import plots

    methods = list(results["methods"])
    problems = list(results["problems"])
    ode = _ode_problems(results)
    panels = [("errors", problems, f"vs {results['reference']} (same discretisation)")]
    if ode:
        panels.append(("continuous", ode, "vs continuous gradient"))
    cells = _cells(results)
    widths = [max(len(cols), 1) for _, cols, _ in panels]
    height = 0.32 * len(methods) + 2.2
    fig, axes = plots.figure(ncols=len(panels), panel_size=(0.5 * max(widths) + 2.5, height))
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("cividis").with_extremes(bad="#E8E8E8")
    image = None
    for ax, (key, columns, title) in zip(axes, panels):
        values = np.full((len(methods), len(columns)), np.nan)
        for i, m in enumerate(methods):
            for j, p in enumerate(columns):
                e = _error(cells[(m, p)], key)
                if e is not None and math.isfinite(e):
                    values[i, j] = math.log10(max(e, FLOOR))
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-17, vmax=0, aspect="auto")
        # cell labels lie inside the axes: kept out of the layout's bounding boxes (measuring
        # hundreds of them was most of the time of saving the figure)
        label = dict(ha="center", va="center", in_layout=False)
        for i, m in enumerate(methods):
            for j, p in enumerate(columns):
                c = cells[(m, p)]
                if c["status"] == "n/a":
                    ax.text(j, i, "n/a", fontsize=5, color="#777777", **label)
                elif math.isnan(values[i, j]):
                    ax.text(j, i, c["status"][:5], fontsize=5, color="#AA0000", **label)
                else:
                    colour = "black" if values[i, j] > -8 else "white"
                    ax.text(j, i, cell_label(_error(c, key)), fontsize=5.5 if _error(c, key) else 4.5,
                            color=colour, **label)
                if key == "errors" and c["status"] in ("fail", "error"):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.6,
                                           edgecolor=plots.OKABE_ITO["vermillion"]))
        ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(methods)), methods if ax is axes[0] else [""] * len(methods), fontsize=7)
        ax.set_title(title, fontsize=9)
        for spine in ax.spines.values():
            spine.set_visible(False)
    bar = fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.01)
    bar.set_label(r'$\log_{10}$ relative $L_2$ error (cells: rounded; "exact": zero error)')
    fig.suptitle(f"Gradient methods x problems ({results['dtype']}); failures outlined", fontsize=10)
    return fig


def _short(value) -> str:
    if value is None:
        return "--"
    return format_number(float(value), 2)


def terminal(results: dict, width: int = 120):
    """Rich renderables: the method x problem matrix (coloured by status; split into
    blocks of problems that fit `width` columns) and a per-method summary."""
    from rich.table import Table as RichTable

    cells = _cells(results)
    problems = list(results["problems"])
    methods = list(results["methods"])
    name_width = max(len(m) for m in methods) + 3
    per_block = max(1, (width - name_width) // 11)
    renderables = []
    for start in range(0, len(problems), per_block):
        block = problems[start:start + per_block]
        title = f"relative L2 error vs {results['reference']} ({results['dtype']})"
        if len(problems) > per_block:
            title += f", problems {start + 1}-{start + len(block)} of {len(problems)}"
        grid = RichTable(title=title, title_justify="left", pad_edge=False, collapse_padding=True)
        grid.add_column("method", style="bold", no_wrap=True)
        for p in block:
            grid.add_column(p, justify="right", overflow="fold")
        for m in methods:
            row = [m]
            for p in block:
                c = cells[(m, p)]
                text = "n/a" if c["status"] == "n/a" else _short(_error(c, "errors"))
                if c["status"] in ("error", "no-reference"):
                    text = c["status"]
                row.append(f"[{STATUS_STYLE[c['status']]}]{text}[/]")
            grid.add_row(*row)
        renderables.append(grid)

    summary = RichTable(title="per method: tolerance, pass/fail/reported/n/a counts, worst errors, median time",
                        title_justify="left", pad_edge=False)
    for column in ("method", "kind", "tol", "pass", "fail", "rep", "n/a", "max err", "max cont", "ms"):
        summary.add_column(column, justify="left" if column in ("method", "kind") else "right", no_wrap=True)
    for m, info in results["methods"].items():
        mine = [cells[(m, p)] for p in problems]
        errors = [_error(c, "errors") for c in mine if _error(c, "errors") is not None]
        cont = [_error(c, "continuous") for c in mine if _error(c, "continuous") is not None]
        times = [c["timing"]["median_seconds"] for c in mine if c.get("timing")]
        tol = info["tolerance"].get(results["dtype"])
        failed = sum(c["status"] in ("fail", "error") for c in mine)
        summary.add_row(
            m, info["kind"], _short(tol) if tol is not None else "none",
            str(sum(c["status"] == "pass" for c in mine)),
            f"[bold red]{failed}[/]" if failed else "0",
            str(sum(c["status"] == "reported" for c in mine)),
            str(sum(c["status"] == "n/a" for c in mine)),
            _short(max(errors)) if errors else "--", _short(max(cont)) if cont else "--",
            f"{1e3 * float(np.median(times)):.3g}" if times else "--",
        )
    renderables.append(summary)
    return renderables
