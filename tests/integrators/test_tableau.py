"""Tableaux are validated data with their order."""

import pytest

import integrators as I


def test_registry_names_and_orders():
    orders = {name: t.order for name, t in I.TABLEAUX.items()}
    assert orders["euler"] == 1 and orders["rk4"] == 4 and orders["bosh3"] == 3
    explicit = {name for name, t in I.TABLEAUX.items() if t.explicit}
    assert explicit == {"euler", "heun", "midpoint", "ralston", "kutta3", "rk4", "rk38", "bosh3", "dopri5", "tsit5", "dopri8"}
    assert {name for name, t in I.TABLEAUX.items() if not t.explicit and not t.symmetric} == {
        "implicit-euler", "kvaerno3", "kvaerno4", "kvaerno5"}
    assert (orders["dopri8"], orders["kvaerno3"], orders["kvaerno4"], orders["kvaerno5"]) == (8, 3, 4, 5)
    assert {name for name, t in I.TABLEAUX.items() if t.symplectic} == {
        "gauss-legendre-1", "gauss-legendre-2", "gauss-legendre-3"
    }
    assert I.tableau("classical-rk4") is I.RK4


def test_unknown_tableau_is_named():
    with pytest.raises(ValueError, match="unknown integrator 'rk99'.*euler"):
        I.tableau("rk99")


def test_row_sum_condition_is_checked():
    with pytest.raises(ValueError, match=r"row-sum condition c_i = sum_j a_ij fails at stage 1"):
        I.ButcherTableau("bad", ((0.0, 0.0), (0.5, 0.0)), (0.5, 0.5), (0.0, 1.0), 2)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"a must have shape \(2, 2\)"):
        I.ButcherTableau("bad", ((0.0,),), (0.5, 0.5), (0.0, 1.0), 2)
    with pytest.raises(ValueError, match=r"c must have shape \(2,\)"):
        I.ButcherTableau("bad", ((0.0, 0.0), (1.0, 0.0)), (0.5, 0.5), (0.0,), 2)


def test_bad_grids():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        I.uniform_grid(1.0, 0)
    with pytest.raises(ValueError, match="t0 != t_final"):
        I.uniform_grid(0.0, 10)
    with pytest.raises(ValueError, match="t0 != t_final"):
        I.uniform_grid(float("nan"), 10)


def test_splitting_times_default_to_the_time_the_drifts_reached():
    assert I.LEAPFROG.fractions == (0.0, 0.0, 1.0)                   # kick at t_k, drift, kick at t_{k+1}
    assert I.SYMPLECTIC_EULER.fractions == (0.0, 0.0)
    assert I.SEMI_IMPLICIT_EULER.steps == (("drift", 1.0), ("kick", 1.0))
    assert I.SEMI_IMPLICIT_EULER.fractions == (0.0, 0.0)             # diffrax's: both read t_k
    assert I.tableau("semi-implicit-euler") is I.SEMI_IMPLICIT_EULER
    with pytest.raises(ValueError, match="1 times for 2 sub-steps"):
        I.SplittingTableau("bad", (("kick", 1.0), ("drift", 1.0)), 1, times=(0.0,))
    with pytest.raises(ValueError, match="kick coefficients sum to 0.5"):
        I.SplittingTableau("bad", (("kick", 0.5), ("drift", 1.0)), 1)
