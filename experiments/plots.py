"""Figures in one house style: Agg backend, the Okabe-Ito colour-blind-safe palette,
labelled axes, PNG and PDF side by side.

- `phase_portrait`: trajectories of a 2-D state drawn over the streamlines of a
  planar vector field, used for the forward field `dx/dt = f(x)` and for the
  conjugate field `dp/dt = -(df/dx)^T p`;
- `relative_deviation`: `|y_k - y_0| / |y_0|` of conserved quantities on a log axis;
- `figure` / `save_figure`: create a figure in the house style, write it as
  `stem.png` and `stem.pdf`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from cycler import cycler  # noqa: E402

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
"""Okabe & Ito (2008), distinguishable under the common colour-vision deficiencies."""

LINE_COLOURS = tuple(
    OKABE_ITO[c] for c in ("blue", "orange", "bluish green", "vermillion", "sky blue", "reddish purple")
)
"""The palette minus black and yellow (kept for text and low-contrast use), in cycle order."""

STREAMLINE_COLOUR = "#B0B0B0"

STYLE = {
    "axes.prop_cycle": cycler(color=LINE_COLOURS),
    "axes.grid": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
    "lines.linewidth": 1.4,
}

matplotlib.rcParams.update(STYLE)
"""Importing this module applies the house style to every figure the process draws."""

PointField = Callable[[np.ndarray], np.ndarray]
"""A planar vector field evaluated on points: `(M, 2) -> (M, 2)`."""


def figure(ncols: int = 1, nrows: int = 1, panel_size: tuple[float, float] = (4.2, 3.8)):
    """`(fig, axes)` in the house style; `axes` is always a flat array."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
        layout="constrained", squeeze=False,
    )
    return fig, axes.ravel()


def _bounds(points: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.maximum(hi - lo, 1e-12 + 1e-3 * np.abs(hi).max(initial=1.0))
    return lo - margin * span, hi + margin * span


def phase_portrait(
    ax,
    field_fn: PointField,
    xs: np.ndarray,
    *,
    labels: tuple[str, str] = ("$x_1$", "$x_2$"),
    title: str | None = None,
    grid: int = 40,
    margin: float = 0.12,
    density: float = 1.1,
    colours: Sequence[str] = LINE_COLOURS,
    markers: tuple[str, str] | None = ("start", "end"),
):
    """Trajectories of a 2-D state over the streamlines of `field_fn`.

    Args:
        ax: a matplotlib axes.
        field_fn: the planar field, `(M, 2) -> (M, 2)`, drawn with `ax.streamplot`
            on a `grid x grid` mesh covering the trajectories (plus `margin`).
        xs: trajectories, shape `(T, 2)` or `(T, B, 2)` (time first, as the sweep stores them).
        labels: axis labels.
        colours: colours cycled over the `B` trajectories.
        markers: legend labels of the open circle (first point of each
            trajectory) and the filled dot (last point); `None` for no legend.
    """
    xs = np.asarray(xs, dtype=float)
    if xs.ndim == 2:
        xs = xs[:, None, :]
    if xs.ndim != 3 or xs.shape[-1] != 2:
        raise ValueError(f"phase_portrait needs trajectories of shape (T, 2) or (T, B, 2); got {xs.shape}")
    lo, hi = _bounds(xs.reshape(-1, 2), margin)
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    velocity = np.asarray(field_fn(np.stack([g1.ravel(), g2.ravel()], axis=-1)), dtype=float)
    u, v = velocity[:, 0].reshape(g1.shape), velocity[:, 1].reshape(g1.shape)
    if np.all(np.isfinite(velocity)) and np.abs(velocity).max() > 0:
        ax.streamplot(
            g1, g2, u, v, color=STREAMLINE_COLOUR, density=density, linewidth=0.7,
            arrowsize=0.8, zorder=1,
        )
    for b in range(xs.shape[1]):
        colour = colours[b % len(colours)]
        ax.plot(xs[:, b, 0], xs[:, b, 1], color=colour, lw=1.3, zorder=2)
        ax.plot(xs[0, b, 0], xs[0, b, 1], "o", mfc="white", mec=colour, ms=4.5, zorder=3)
        ax.plot(xs[-1, b, 0], xs[-1, b, 1], "o", color=colour, ms=4.0, zorder=3)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    if markers:
        ink = OKABE_ITO["black"]
        ax.plot([], [], "o", mfc="white", mec=ink, ms=4.5, label=markers[0])
        ax.plot([], [], "o", color=ink, ms=4.0, label=markers[1])
        ax.legend(loc="best")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if title:
        ax.set_title(title)
    return ax


def relative_deviation(
    ax,
    ts: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    xlabel: str = "$t$",
    ylabel: str = r"$|y(t) - y(0)|\,/\,|y(0)|$",
    title: str | None = None,
    floor: float = 1e-18,
):
    """`|y_k - y_0| / |y_0|` of each series on a log axis.

    Exact zeros (always the case at `k = 0`) are drawn at `floor`; a dotted
    line marks float64 machine epsilon.
    """
    ts = np.asarray(ts, dtype=float)
    for label, y in series.items():
        y = np.asarray(y, dtype=float)
        scale = abs(y[0]) if y[0] != 0 else 1.0
        ax.semilogy(ts, np.maximum(np.abs(y - y[0]) / scale, floor), label=label)
    ax.axhline(np.finfo(np.float64).eps, color=OKABE_ITO["black"], ls=":", lw=0.8, label="float64 eps")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return ax


def save_figure(fig, directory: Path, stem: str, close: bool = True) -> list[Path]:
    """Write `directory/stem.png` and `directory/stem.pdf` (creation dates left out
    so the bytes depend only on the content); return both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png, pdf = directory / f"{stem}.png", directory / f"{stem}.pdf"
    fig.savefig(png, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    if close:
        plt.close(fig)
    return [png, pdf]
