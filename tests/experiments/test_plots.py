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


def test_fitted_order_recovers_a_known_power_law():
    h = np.logspace(-3, -1, 7)
    assert plots.fitted_order(h, 3.0 * h**4) == pytest.approx(4.0, abs=1e-12)
    # non-positive and non-finite points are left out of the fit, not allowed to poison it
    assert plots.fitted_order([1, 2, 4, 8], [0.0, 4.0, 16.0, np.nan]) == pytest.approx(2.0, abs=1e-12)
    assert plots.fitted_order([1.0], [1.0]) is None


def test_convergence_labels_each_series_with_its_slope():
    fig, axes = plots.figure()
    h = np.array([0.1, 0.05, 0.025])
    slopes = plots.convergence(axes[0], h, {"euler": h, "rk4": h**4})
    assert slopes["euler"] == pytest.approx(1.0) and slopes["rk4"] == pytest.approx(4.0)
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "euler (slope 1.00)" in labels and "rk4 (slope 4.00)" in labels
    assert axes[0].get_xscale() == axes[0].get_yscale() == "log"


def test_scaling_energy_training_and_copies_draw_labelled_axes():
    fig, axes = plots.figure(ncols=4)
    slopes = plots.scaling(axes[0], [10, 100, 1000], {"store-all": [1e3, 1e4, 1e5], "reversible": [5e2] * 3},
                           ylabel="bytes")
    assert slopes["store-all"] == pytest.approx(1.0) and slopes["reversible"] == pytest.approx(0.0, abs=1e-12)
    plots.energy(axes[1], np.arange(5.0), {"H": np.ones(5)})
    plots.training_curves(axes[2], np.arange(3), {"a": [3.0, 2.0, 1.0], "b": [3.0, 2.0, 1.0]})
    assert [line.get_linestyle() for line in axes[2].get_lines()] == ["-", "--"]  # coinciding curves stay visible
    t = np.linspace(0, 1, 10)
    x = np.stack([t, t**2], -1)
    plots.doubled_copies(axes[3], x + 0.1, x - 0.1)
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    with pytest.raises(ValueError, match="two \\(T, 2\\) trajectories"):
        plots.doubled_copies(axes[3], x, x[:5])
