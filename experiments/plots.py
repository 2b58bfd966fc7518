"""Figures in one house style: Agg backend, the Okabe-Ito colour-blind-safe palette,
labelled axes, PNG and PDF side by side.

- `phase_portrait`: trajectories of a 2-D state drawn over the streamlines of a
  planar vector field, used for the forward field `dx/dt = f(x)` and for the
  conjugate field `dp/dt = -(df/dx)^T p`;
- `relative_deviation`: `|y_k - y_0| / |y_0|` of conserved quantities on a log axis;
- `doubled_copies`: the two copies `x1 = x+ + x-/2`, `x2 = x+ - x-/2` of the
  doubled-variable formalism drawn together in the plane, separating under the loss;
- `energy`: `H(t)` itself along the flow;
- `convergence`: error against step size (or steps) on log-log axes, with the
  least-squares slope of each series (`fitted_order`) in its legend;
- `scaling`: a measured cost (memory, time) against `N` on log-log axes, with slopes;
- `training_curves`: losses (or accuracies) against the training step;
- `figure` / `save_figure`: create a figure in the house style, write it as
  `stem.png` and `stem.pdf`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import logging

import matplotlib

matplotlib.use("Agg")
logging.getLogger("fontTools").setLevel(logging.ERROR)
"""fontTools warns about the zero font timestamps of reproducible PDFs; nothing is wrong."""

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


def _annotate(ax, xlabel: str, ylabel: str, title: str | None) -> None:
    """Axis labels, the legend and (if given) the title of a panel."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)


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
        ax.legend(loc=_emptiest_corner(xs.reshape(-1, 2), lo, hi))
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if title:
        ax.set_title(title)
    return ax


CORNERS = {"upper right": (1.0, 1.0), "upper left": (0.0, 1.0), "lower left": (0.0, 0.0), "lower right": (1.0, 0.0)}


def _emptiest_corner(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> str:
    """The legend location whose corner of the axes is farthest from every point (axes fractions).

    Chosen from the trajectories alone: matplotlib's ``loc="best"`` would test the
    legend against every streamline segment, several seconds per saved figure.
    """
    fractions = (points - lo) / np.where(hi > lo, hi - lo, 1.0)
    return max(CORNERS, key=lambda c: np.min(np.linalg.norm(fractions - np.asarray(CORNERS[c]), axis=1)))


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
    _annotate(ax, xlabel, ylabel, title)
    return ax


MAX_PNG_PIXELS = 2400
"""About the widest PNG `save_figure` writes (the figure's width before the tight crop): a wider
figure is rasterised at a lower resolution; its PDF keeps the vectors."""


def save_figure(fig, directory: Path, stem: str, close: bool = True) -> list[Path]:
    """Write `directory/stem.png` and `directory/stem.pdf` (creation dates left out
    so the bytes depend only on the content); return both paths. The PNG is about
    `MAX_PNG_PIXELS` wide at most and stored with a 256-colour palette (median cut, no
    dithering: line art and text keep their colours), so a twelve-panel figure is a
    few hundred kilobytes."""
    from io import BytesIO

    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png, pdf = directory / f"{stem}.png", directory / f"{stem}.pdf"
    width = fig.get_size_inches()[0]  # the "tight" bounding box saved is at most this wide
    dpi = min(float(matplotlib.rcParams["savefig.dpi"]), MAX_PNG_PIXELS / width)
    raster = BytesIO()
    fig.savefig(raster, format="png", metadata={"Software": None}, dpi=dpi)
    image = Image.open(raster).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(png, optimize=True)
    fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    if close:
        plt.close(fig)
    return [png, pdf]


def fitted_order(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope of `log y` against `log x` over the points with finite
    positive `x` and `y`; `None` with fewer than two such points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if keep.sum() < 2:
        return None
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def doubled_copies(
    ax,
    x1: np.ndarray,
    x2: np.ndarray,
    *,
    labels: tuple[str, str] = ("$x_1$ (first component)", "$x_2$ (second component)"),
    title: str | None = None,
    name: str = "",
    colour: str | None = None,
    legend: bool = True,
):
    """The two copies of the state, `x1` solid and `x2` dashed, shape `(T, 2)` each:
    they coincide on the forward manifold and separate by `x- = x1 - x2`
    (`legend=False`: no legend entries, for further samples of one `beta`)."""
    x1, x2 = np.asarray(x1, dtype=float), np.asarray(x2, dtype=float)
    if x1.shape != x2.shape or x1.ndim != 2 or x1.shape[-1] != 2:
        raise ValueError(f"doubled_copies needs two (T, 2) trajectories; got {x1.shape} and {x2.shape}")
    colour = colour or LINE_COLOURS[0]
    labels1 = (f"$x^{{(1)}}$ {name}".strip(), f"$x^{{(2)}}$ {name}".strip()) if legend else ("_", "_")
    ax.plot(x1[:, 0], x1[:, 1], color=colour, lw=1.3, label=labels1[0])
    ax.plot(x2[:, 0], x2[:, 1], color=colour, lw=1.3, ls="--", label=labels1[1])
    ax.plot(x1[-1, 0], x1[-1, 1], "o", color=colour, ms=3.5)
    ax.plot(x2[-1, 0], x2[-1, 1], "o", mfc="white", mec=colour, ms=3.5)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if title:
        ax.set_title(title)
    return ax


def energy(ax, ts: np.ndarray, series: Mapping[str, np.ndarray], *, xlabel: str = "$t$",
           ylabel: str = r"$H = p\cdot f(x)$", title: str | None = None):
    """`H(t)` of each series against `t` (linear axes)."""
    for label, y in series.items():
        ax.plot(np.asarray(ts, dtype=float), np.asarray(y, dtype=float), label=label)
    _annotate(ax, xlabel, ylabel, title)
    return ax


def _loglog_with_slopes(ax, xs, series, floor, slope_label, fit_range=None, fit_above=None):
    slopes = {}
    for label, y in series.items():
        x = np.asarray(xs[label] if isinstance(xs, Mapping) else xs, dtype=float)
        y = np.asarray(y, dtype=float)
        keep = np.ones(x.shape, bool) if fit_range is None else (x >= fit_range[0]) & (x <= fit_range[1])
        if fit_above is not None:
            keep &= y > fit_above
        slope = fitted_order(x[keep], y[keep])
        slopes[label] = slope
        shown = f"{label} ({slope_label} {slope:.2f})" if slope is not None else label
        ax.loglog(x, np.maximum(y, floor), marker="o", ms=3.5, label=shown)
    return slopes


def convergence(
    ax,
    steps: np.ndarray | Mapping[str, np.ndarray],
    errors: Mapping[str, np.ndarray],
    *,
    xlabel: str = "step size $h$",
    ylabel: str = "error",
    title: str | None = None,
    floor: float = 1e-18,
    fit_range: tuple[float, float] | None = None,
    fit_above: float | None = None,
) -> dict[str, float | None]:
    """Errors against step size (or step count) on log-log axes; each legend entry
    carries the slope fitted over the points with `x` in `fit_range` and error
    above `fit_above` (the observed order). Returns `{label: slope}`."""
    slopes = _loglog_with_slopes(ax, steps, errors, floor, "slope", fit_range, fit_above)
    ax.axhline(np.finfo(np.float64).eps, color=OKABE_ITO["black"], ls=":", lw=0.8, label="float64 eps")
    _annotate(ax, xlabel, ylabel, title)
    return slopes


def scaling(
    ax,
    ns: np.ndarray | Mapping[str, np.ndarray],
    values: Mapping[str, np.ndarray],
    *,
    xlabel: str = "steps $N$",
    ylabel: str,
    title: str | None = None,
) -> dict[str, float | None]:
    """A cost (memory in bytes, time in seconds) against `N` on log-log axes, each
    series labelled with its log-log slope. Returns `{label: slope}`."""
    slopes = _loglog_with_slopes(ax, ns, values, 1e-300, "slope", None)
    _annotate(ax, xlabel, ylabel, title)
    return slopes


def training_curves(
    ax,
    steps: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    xlabel: str = "training step",
    ylabel: str = "loss",
    title: str | None = None,
    log: bool = True,
    styles: Sequence[str] = ("-", "--", ":", "-."),
):
    """Training curves against the step (log y by default); line styles cycle so
    that curves that coincide stay visible."""
    for i, (label, y) in enumerate(series.items()):
        plot = ax.semilogy if log else ax.plot
        plot(np.asarray(steps), np.asarray(y, dtype=float), ls=styles[i % len(styles)], label=label)
    _annotate(ax, xlabel, ylabel, title)
    return ax
