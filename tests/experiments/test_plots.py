"""House-style figures: phase portraits over streamlines, saved as PNG and PDF."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from experiments import plots


def _rotation(points):
    return points @ np.array([[0.0, 1.0], [-1.0, 0.0]])


def test_agg_backend_and_palette():
    assert matplotlib.get_backend().lower() == "agg"
    assert len(set(plots.LINE_COLOURS)) == len(plots.LINE_COLOURS)
    assert set(plots.LINE_COLOURS) <= set(plots.OKABE_ITO.values())


def test_phase_portrait_draws_streamlines_and_trajectories(tmp_path):
    t = np.linspace(0, np.pi, 30)
    xs = np.stack([np.stack([r * np.cos(t), r * np.sin(t)], -1) for r in (1.0, 2.0)], axis=1)
    fig, axes = plots.figure(ncols=2)
    plots.phase_portrait(axes[0], _rotation, xs)
    plots.phase_portrait(axes[1], _rotation, xs[:, 0], labels=("$p_1$", "$p_2$"), markers=None)
    assert axes[0].get_xlabel() == "$x_1$" and axes[1].get_ylabel() == "$p_2$"
    assert len(axes[0].collections) >= 1  # the streamlines
    assert len(axes[0].get_lines()) >= 2 * 3  # one line and two markers per trajectory
    assert axes[0].get_legend() is not None and axes[1].get_legend() is None
    paths = plots.save_figure(fig, tmp_path / "figures", "portrait")
    assert [p.name for p in paths] == ["portrait.png", "portrait.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_phase_portrait_rejects_non_planar_states():
    fig, axes = plots.figure()
    with pytest.raises(ValueError, match=r"\(T, 2\) or \(T, B, 2\)"):
        plots.phase_portrait(axes[0], _rotation, np.zeros((5, 3)))


def test_relative_deviation_has_a_log_axis():
    fig, axes = plots.figure()
    plots.relative_deviation(axes[0], np.arange(4.0), {"H": np.array([1.0, 1.1, 1.2, 1.3])})
    assert axes[0].get_yscale() == "log"
