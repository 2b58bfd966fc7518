"""optax training through `integrators.solve`: the three trainers' loss curves."""

import pytest

from experiments.catalog.train_neural_ode import EXPERIMENT, TrainNeuralODEConfig
from experiments.runner import run


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick preset through the runner (about 30 s: the tests that read it are slow)."""
    return run(EXPERIMENT, {"quick": True}, out=tmp_path_factory.mktemp("runs") / "train").results


@pytest.mark.slow
def test_least_action_training_follows_autodiff_at_every_step(quick):
    """Same seed, same optax update: the curves differ only by the gradients, which agree
    to rounding, so 1e-9 relative at every step leaves room for Adam's normalisation
    amplifying 1e-16 differences over the run."""
    assert len(quick["losses"]["least-action"]) == 30
    assert quick["max_relative_curve_difference"]["least-action"] <= 1e-9


@pytest.mark.slow
def test_diffrax_peer_reaches_the_same_loss(quick):
    """diffrax's ReversibleHeun on the same grid is the same discrete map, so its
    RecursiveCheckpointAdjoint training reaches the same loss to rounding (1e-9)."""
    assert quick["max_relative_curve_difference"]["diffrax"] <= 1e-9
    final = quick["final_loss"]
    assert abs(final["diffrax"] - final["least-action"]) <= 1e-9 * final["least-action"]


@pytest.mark.slow
def test_training_lowers_the_loss(quick):
    losses = quick["losses"]["least-action"]
    assert losses[-1] < 0.5 * losses[0]
    assert set(quick["seconds_per_step"]) == {"least-action", "autodiff", "diffrax"}


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"steps": 41}, "multiple of 'observations'"),
        ({"method": "rk5"}, "unknown integrator"),
        ({"memory": "reversible", "method": "rk4"}, "reversible memory needs a reversible method"),
        ({"memory": "tape"}, "unknown memory strategy"),
        ({"memory_steps": "1000,1001"}, "multiple of 'observations'"),
    ],
)
def test_bad_config_is_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        EXPERIMENT.resolve(bad)


@pytest.mark.parametrize(
    "method, memory",
    [pytest.param("rk4", "checkpoint-log", marks=pytest.mark.slow), ("reversible-heun", "store-all")],
)
def test_the_three_gradients_agree(method, memory):
    """At theta_0, each trainer's gradient against autodiff through the scan: 1e-12
    relative L2 (rounding of the same discrete map; diffrax builds rk4 from the same tableau)."""
    import jax
    import lagrangian

    import integrators
    from experiments.catalog.train_neural_ode import observed_trajectory, trainers
    from tests.helpers import rel_l2

    config = EXPERIMENT.resolve({"method": method, "memory": memory, "steps": 12, "observations": 4, "hidden": 5})
    field = lagrangian.MLPField(state_dim=2, hidden=5)
    theta = field.init(jax.random.key(1))
    found = trainers(config, field, integrators.uniform_grid(config.t_final, 12), observed_trajectory(config)[1])
    value, reference = found["autodiff"](theta)
    for name in ("least-action", "diffrax"):
        v, g = found[name](theta)
        assert abs(v - value) <= 1e-12 * abs(value)
        assert rel_l2(g, reference) <= 1e-12


@pytest.mark.benchmark
def test_time_per_step_benchmark(tmp_path, capsys):
    """The full preset (100 Adam steps, 200 reversible-Heun steps): time per step of the
    three trainers measured side by side in one run and printed as ratios to autodiff.
    Timing is reported, never asserted; the curves must still agree."""
    results = run(EXPERIMENT, {}, out=tmp_path / "train").results
    with capsys.disabled():
        print("\ntrain-neural-ode time per step (ms) and ratio to jax.grad through the scan:")
        for name, seconds in results["seconds_per_step"].items():
            print(f"  {name:>13}: {1e3 * seconds:8.3f} ms   x{results['time_ratio_to_autodiff'][name]:.2f}")
    assert results["max_relative_curve_difference"]["least-action"] <= 1e-9


@pytest.mark.slow   # five trainers, compiled three times each: about 40 s on 2 idle cores
def test_a_coupled_scheme_trains_beside_its_plain_tableau():
    """`reversible-dopri5`: its least-action (`Reversible()`) and autodiff gradients agree at theta_0
    (1e-12 relative L2, the same map), and so do the plain Dopri5 map's three (least-action with
    StoreStages, autodiff, `diffrax.Dopri5` with RecursiveCheckpointAdjoint); the two maps differ.
    The XLA memory of the reversible gradient is flat in N (within 10% from N = 40 to 400), that
    of autodiff through either scan grows (more than 5x)."""
    import jax
    import lagrangian

    import integrators
    from experiments.catalog.train_neural_ode import observed_trajectory, reference_of, temp_memory, trainers
    from tests.helpers import rel_l2

    config = EXPERIMENT.resolve({"method": "reversible-dopri5", "memory": "reversible", "steps": 40,
                                 "observations": 4, "hidden": 5, "memory_steps": "400"})
    field = lagrangian.MLPField(state_dim=2, hidden=5)
    theta = field.init(jax.random.key(1))
    targets = observed_trajectory(config)[1]
    found = trainers(config, field, integrators.uniform_grid(config.t_final, 40), targets)
    assert set(found) == {"least-action", "autodiff", "least-action (dopri5)", "autodiff (dopri5)", "diffrax (dopri5)"}
    results = {name: value_and_grad(theta) for name, value_and_grad in found.items()}
    for name, (value, grad) in results.items():
        reference_value, reference_grad = results[reference_of(name)]
        assert abs(value - reference_value) <= 1e-12 * abs(reference_value)
        assert rel_l2(grad, reference_grad) <= 1e-12
    assert abs(results["autodiff"][0] - results["autodiff (dopri5)"][0]) > 1e-12 * results["autodiff"][0]

    memory = temp_memory(config, field, theta, targets)
    assert memory["least-action"][400] <= 1.1 * memory["least-action"][40]
    assert memory["autodiff"][400] >= 5 * memory["autodiff"][40]
    assert memory["autodiff (dopri5)"][400] >= 5 * memory["autodiff (dopri5)"][40]
