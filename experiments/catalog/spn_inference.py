"""On complete, decomposable sum-product networks backprop is exact inference (Darwiche 2003; the
second part of "Backpropagation from KL Projections").

Networks: the spec's Bayesian network `A -> B`, `A -> C` over binary variables, compiled into its
network polynomial `S = sum_a P(a) lambda_a (sum_b P(b|a) lambda_b) (sum_c P(c|a) lambda_c)`, and
random complete, decomposable SPNs over 4-8 binary variables. Backprop is the written-out downward
pass through one evaluation of the network (`SPN.derivatives`); in log-space it is `jax.grad` of
`log S`.

What is verified:

- evidence `C = 1`: `S = 0.45`, `dS/dlambda = P(x, e \\ X)` (0.42, 0.03, 0.339, 0.111, 0.55, 0.45)
  and `P(A=1 | C=1) = 1/15` (`spec_check`);
- for every partial assignment of the evidence, `dS/dlambda_{X=x} = P(X=x, e \\ X)` and
  `d log S / d log lambda = P(X=x | e)` against enumeration of the CPT product and against pgmpy's
  `VariableElimination` on the same network (`bayes_net`; pgmpy entries are `null` when the `peers`
  extra is not installed);
- the same against enumeration of the SPN's joint table on random SPNs (`random_spns`);
- a non-complete sum and a non-decomposable product are rejected with a `ValueError` naming the
  node (`validation`, the messages);
- the checkable version of "backward values are Lagrange multipliers": the I-projection
  `min KL(q || p)` subject to marginal constraints `E_q[phi_i] = m_i` is `q ~ p exp(mu . phi)`; its
  log-partition is `log S` at `lambda = exp(mu)`, backprop through it returns `E_q[phi]`, and Newton
  on `grad log S(mu) = m` gives the multipliers. They are compared with a direct SLSQP solve of
  the constrained problem on the joint table (its KKT multipliers; `i_projection`), and for a single
  constraint `q(C=1) = m` with Jeffrey's rule in closed form; as `m -> 1` the backprop moments tend
  to the hard-evidence posteriors (`soft_evidence`).

- the backward values as Lagrange multipliers directly (`backward_multipliers`): `log S(lambda) -
  log S(1) = max_q theta . E_q[phi] - KL(q || p)` with `theta = log lambda` imposed as equality
  constraints; SLSQP on the joint table returns their KKT multipliers, which must equal minus the
  backward values `d log S / d log lambda` of one backward pass, for indicator settings from
  `lambda = 1` (the marginals) to soft evidence `lambda_{C=0} = 1e-3` (close to the posteriors
  given `C = 1`);
- what fails without the structural conditions (`invalid_spns`, networks built with
  `validate=False`): the backward values at `lambda = 1`, `lambda dS/dlambda / S(1)`, against the
  marginals of the distribution the network assigns to complete assignments
  (`S(one-hot(x))`, normalised), and `S(1)` against the total mass; for the two hand-built networks
  of `validation` and for random SPNs made non-complete (a sum over the root and a one-variable
  leaf) or non-decomposable (a product of the root and a one-variable leaf).

Preset `quick`: 10 random SPNs and a 9-point soft-evidence sweep; the full preset 200 and 25.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .. import plots
from ..correspondences import (
    SPN,
    Indicator,
    Product,
    Sum,
    TreeBayesNet,
    backward_as_multipliers,
    enumerate_derivatives,
    example_bayes_net,
    fitted_order,
    i_projection_newton,
    i_projection_slsqp,
    moments,
    random_spn,
    tilted_table,
)
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

SPEC_EVIDENCE = {"C": 1}
SPEC_VALUES = {"S": 0.45, "A=0": 0.42, "A=1": 0.03, "B=0": 0.339, "B=1": 0.111, "C=0": 0.55, "C=1": 0.45,
               "P(A=1|C=1)": 1 / 15}
"""The spec's hand-computed numbers for the evidence `C = 1`."""

CONSTRAINT_SETS = {
    "q(C=1)=0.8": {("C", 1): 0.8},
    "q(B=1)=0.5, q(C=1)=0.8": {("B", 1): 0.5, ("C", 1): 0.8},
    "q(A=1)=0.6, q(B=0)=0.3, q(C=1)=0.2": {("A", 1): 0.6, ("B", 0): 0.3, ("C", 1): 0.2},
}
"""Marginal constraints of the I-projection comparisons."""


@dataclass(frozen=True)
class SPNInferenceConfig:
    """Defaults of the spn-inference experiment.

    seed: seed of the random SPNs and their evidence.
    random_networks: number of random SPNs (the quick preset uses 10).
    min_variables, max_variables: number of binary variables of a random SPN.
    soft_evidence_points: points of the sweep `q(C=1) = m` (the quick preset uses 9).
    quick: the small preset (< 1 minute).
    """

    seed: int = 0
    random_networks: int = 200
    min_variables: int = 4
    max_variables: int = 8
    soft_evidence_points: int = 25
    quick: bool = False

    def __post_init__(self):
        if self.random_networks < 1:
            raise ValueError(f"config key 'random_networks' must be >= 1; got {self.random_networks}")
        if not 2 <= self.min_variables <= self.max_variables <= 10:
            raise ValueError("config keys 'min_variables' <= 'max_variables' must lie in [2, 10]; "
                             f"got {self.min_variables}, {self.max_variables}")
        replaced = [k for k in ("random_networks", "soft_evidence_points")
                    if self.quick and getattr(self, k) != SPNInferenceConfig.__dataclass_fields__[k].default]
        if replaced:
            raise ValueError(f"config key 'quick' replaces the sizes; do not also set {', '.join(replaced)}")
        if self.soft_evidence_points < 3:
            raise ValueError(f"config key 'soft_evidence_points' must be >= 3; got {self.soft_evidence_points}")

    def sizes(self) -> tuple[int, int]:
        """`(random networks, soft-evidence points)` actually run."""
        return (10, 9) if self.quick else (self.random_networks, self.soft_evidence_points)


TOTAL_STEPS = 7


def all_evidence(variables: dict[str, int]):
    """Every partial assignment (including the empty one)."""
    names = list(variables)
    for chosen in itertools.product(*[[None, *range(variables[n])] for n in names]):
        yield {n: x for n, x in zip(names, chosen) if x is not None}


def spec_check(spn: SPN, bn: TreeBayesNet, ve) -> dict:
    """The spec's numbers for `C = 1`: backprop, enumeration and pgmpy side by side."""
    S, d = spn.derivatives(SPEC_EVIDENCE)
    post = spn.posteriors(SPEC_EVIDENCE)
    S_enum, d_enum = enumerate_derivatives(bn.joint_table(), list(bn.variables), SPEC_EVIDENCE)
    rows = {"S": (S, S_enum, None if ve is None else float(ve.query(["C"], show_progress=False).values[1]))}
    for v in bn.variables:
        for x in range(2):
            key, slot = f"{v}={x}", spn.slot(v, x)
            if ve is None:
                pg = None
            elif v in SPEC_EVIDENCE:
                pg = float(ve.query([v], show_progress=False).values[x])
            else:
                pg = float(ve.query([v, "C"], joint=True, show_progress=False).get_value(**{v: x, "C": 1}))
            rows[key] = (float(d[slot]), float(d_enum[slot]), pg)
    pg_post = None if ve is None else float(ve.query(["A"], evidence=SPEC_EVIDENCE, show_progress=False).values[1])
    rows["P(A=1|C=1)"] = (float(post[spn.slot("A", 1)]), float(d_enum[spn.slot("A", 1)] / S_enum), pg_post)
    out = {key: {"spec": SPEC_VALUES[key], "backprop": b, "enumeration": e, "pgmpy": p}
           for key, (b, e, p) in rows.items()}
    out["max_abs_error_vs_spec"] = max(abs(v["backprop"] - v["spec"]) for v in out.values())
    return out


def bayes_net_checks(spn: SPN, bn: TreeBayesNet, ve) -> dict:
    """Every partial evidence: derivatives and posteriors against enumeration and pgmpy."""
    names = list(bn.variables)
    table = bn.joint_table()
    worst = {"derivatives_vs_enumeration": 0.0, "posteriors_vs_enumeration": 0.0,
             "derivatives_vs_pgmpy": None if ve is None else 0.0, "posteriors_vs_pgmpy": None if ve is None else 0.0}
    count = 0
    for evidence in all_evidence(bn.variables):
        count += 1
        S, d = spn.derivatives(evidence)
        post = spn.posteriors(evidence)
        S_enum, d_enum = enumerate_derivatives(table, names, evidence)
        worst["derivatives_vs_enumeration"] = max(worst["derivatives_vs_enumeration"], abs(S - S_enum),
                                                  float(np.max(np.abs(d - d_enum))))
        for v in names:
            if v in evidence:
                continue
            slots = [spn.slot(v, x) for x in range(bn.variables[v])]
            worst["posteriors_vs_enumeration"] = max(worst["posteriors_vs_enumeration"],
                                                     float(np.max(np.abs(post[slots] - d_enum[slots] / S_enum))))
            if ve is None:
                continue
            joint = ve.query([v, *evidence], joint=True, show_progress=False)
            pg = np.array([joint.get_value(**{v: x}, **evidence) for x in range(bn.variables[v])])
            worst["derivatives_vs_pgmpy"] = max(worst["derivatives_vs_pgmpy"], float(np.max(np.abs(d[slots] - pg))))
            if evidence:
                marginal = ve.query([v], evidence=evidence, show_progress=False).values
            else:
                marginal = ve.query([v], show_progress=False).values
            worst["posteriors_vs_pgmpy"] = max(worst["posteriors_vs_pgmpy"],
                                               float(np.max(np.abs(post[slots] - marginal))))
    return {"evidence_sets": count, "max_abs_error": worst}


def random_spn_checks(config: SPNInferenceConfig, count: int) -> dict:
    """Random SPNs: derivatives and posteriors against enumeration of the SPN's own joint table."""
    rng = np.random.default_rng(config.seed)
    variables, nodes, der_err, post_err = [], [], [], []
    for _ in range(count):
        n = int(rng.integers(config.min_variables, config.max_variables + 1))
        spn = random_spn(rng, n)
        table = spn.joint_table()
        names = list(spn.variables)
        observed = rng.choice(n, size=int(rng.integers(0, n)), replace=False)
        evidence = {names[int(i)]: int(rng.integers(2)) for i in observed}
        S, d = spn.derivatives(evidence)
        S_enum, d_enum = enumerate_derivatives(table, names, evidence)
        post = spn.posteriors(evidence)
        hidden = [spn.slot(v, x) for v in names if v not in evidence for x in range(2)]
        variables.append(n)
        nodes.append(len(spn.nodes))
        der_err.append(max(abs(S - S_enum), float(np.max(np.abs(d - d_enum)))))
        post_err.append(float(np.max(np.abs(post[hidden] - d_enum[hidden] / S_enum))) if hidden else 0.0)
    return {"count": count, "variables": variables, "nodes": nodes,
            "derivative_abs_error": der_err, "posterior_abs_error": post_err,
            "max_derivative_abs_error": max(der_err), "max_posterior_abs_error": max(post_err)}


def validation_messages() -> dict:
    """The errors raised for a non-complete sum and a non-decomposable product."""
    out = {}
    cases = {
        "not_complete": lambda: SPN({"A": 2, "B": 2}, (Indicator("A", 0), Indicator("B", 0), Sum((0, 1), (0.5, 0.5)))),
        "not_decomposable": lambda: SPN({"A": 2, "B": 2}, (Indicator("A", 0), Indicator("A", 1), Indicator("B", 0),
                                                           Product((0, 2)), Product((1, 3)))),
    }
    for name, build in cases.items():
        try:
            build()
        except ValueError as error:
            out[name] = str(error)
        else:
            raise AssertionError(f"the {name} SPN was accepted")
    return out


MULTIPLIER_SETTINGS = {
    "lambda = 1": np.ones(6),
    "lambda_C0 = 0.25": np.array([1.0, 1.0, 1.0, 1.0, 0.25, 1.0]),
    "mixed": np.array([0.5, 2.0, 1.0, 0.3, 0.1, 1.0]),
    "lambda_C0 = 1e-3": np.array([1.0, 1.0, 1.0, 1.0, 1e-3, 1.0]),
}
"""Indicator settings of the backward-values-as-multipliers check (order A0, A1, B0, B1, C0, C1)."""


def multiplier_checks(spn: SPN) -> dict:
    """Backward values `d log S / d log lambda` against SLSQP's multipliers of `theta = log lambda`."""
    out = {}
    for label, lam in MULTIPLIER_SETTINGS.items():
        r = backward_as_multipliers(spn, lam)
        out[label] = {"lambda": lam, "backward": r.backward, "minus_multipliers": -r.multipliers,
                      "max_abs_difference": float(np.max(np.abs(r.backward + r.multipliers))),
                      "slsqp_success": r.success}
    hard = spn.posteriors({"C": 1})
    return {"settings": out, "max_abs_difference": max(v["max_abs_difference"] for v in out.values()),
            "softest_vs_hard_evidence_posteriors": float(np.max(np.abs(out["lambda_C0 = 1e-3"]["backward"] - hard)))}


def marginal_error(spn: SPN) -> dict:
    """Backward values at `lambda = 1` against the marginals of the normalised `S(one-hot(x))`."""
    table = spn.joint_table()
    S, d = spn.derivatives()
    names = list(spn.variables)
    marginals = enumerate_derivatives(table / table.sum(), names)[1]
    return {"backward_vs_marginals": float(np.max(np.abs(d / S - marginals))),
            "S_of_ones_minus_total_mass": float(S - table.sum())}


def invalid_spn_checks(config: SPNInferenceConfig, count: int) -> dict:
    """The backward values stop being marginals when completeness or decomposability fails."""
    bn_spn = example_bayes_net().to_spn()
    a_leaf = (Indicator("A", 0), Indicator("A", 1), Indicator("B", 0), Indicator("B", 1))
    cases = {
        "valid (A -> B, A -> C)": bn_spn,
        "not complete: 0.5 [A, B] + 0.5 [B]": SPN({"A": 2, "B": 2}, a_leaf + (
            Sum((0, 1), (0.3, 0.7)), Sum((2, 3), (0.6, 0.4)), Product((4, 5)), Sum((2, 3), (0.2, 0.8)),
            Sum((6, 7), (0.5, 0.5))), validate=False),
        "not decomposable: [A] [A] [B]": SPN({"A": 2, "B": 2}, a_leaf + (
            Sum((0, 1), (0.3, 0.7)), Sum((0, 1), (0.6, 0.4)), Sum((2, 3), (0.2, 0.8)), Product((4, 5, 6))),
            validate=False),
    }
    hand = {label: marginal_error(spn) for label, spn in cases.items()}
    rng = np.random.default_rng(config.seed + 7)
    random = {"not_complete": [], "not_decomposable": [], "valid": []}
    for _ in range(count):
        base = random_spn(rng, int(rng.integers(config.min_variables, config.max_variables + 1)))
        root = len(base.nodes) - 1
        leaf = tuple(i for i, node in enumerate(base.nodes) if isinstance(node, Indicator) and node.variable == "X0")
        nodes = base.nodes + (Sum(leaf, (0.5, 0.5)),)
        random["valid"].append(marginal_error(base)["backward_vs_marginals"])
        broken = SPN(base.variables, nodes + (Sum((root, root + 1), (0.5, 0.5)),), validate=False)
        random["not_complete"].append(marginal_error(broken)["backward_vs_marginals"])
        broken = SPN(base.variables, nodes + (Product((root, root + 1)),), validate=False)
        random["not_decomposable"].append(marginal_error(broken)["backward_vs_marginals"])
    return {"hand_built": hand, "random": random,
            "random_min_error": {k: float(min(v)) for k, v in random.items()},
            "random_max_error": {k: float(max(v)) for k, v in random.items()}}


def projection_checks(spn: SPN, bn: TreeBayesNet) -> dict:
    """Newton multipliers (backprop through log S) against SLSQP on the joint table."""
    names, table = list(bn.variables), bn.joint_table()
    out = {}
    for label, constraints in CONSTRAINT_SETS.items():
        newton = i_projection_newton(spn, constraints)
        direct = i_projection_slsqp(table, names, constraints)
        q = tilted_table(table, names, newton.features, newton.multipliers)
        out[label] = {
            "features": [f"{v}={x}" for v, x in newton.features],
            "targets": newton.targets, "multipliers_newton": newton.multipliers,
            "multipliers_slsqp": direct.multipliers,
            "multiplier_max_abs_difference": float(np.max(np.abs(newton.multipliers - direct.multipliers))),
            "table_max_abs_difference": float(np.max(np.abs(q - direct.table))),
            "moment_residual": float(np.max(np.abs(newton.moments - newton.targets))),
            "kl_newton": newton.kl, "kl_slsqp": direct.kl, "newton_iterations": newton.iterations,
            "slsqp_success": direct.success,
        }
    return out


def soft_evidence_sweep(spn: SPN, bn: TreeBayesNet, points: int) -> dict:
    """`q(C=1) = m`: the multiplier (Newton vs Jeffrey's rule) and the backprop moment of `A=1`
    (vs enumeration of Jeffrey's rule); its gap to the hard-evidence posterior `1/15` against `1 - m`."""
    table = bn.joint_table()
    pc = float(table[..., 1].sum())
    ms = 1 - np.logspace(-6, np.log10(0.95), points)[::-1]
    mu, mu_jeffrey, moment_a, jeffrey_a = [], [], [], []
    for m in ms:
        newton = i_projection_newton(spn, {("C", 1): float(m)})
        mu.append(float(newton.multipliers[0]))
        mu_jeffrey.append(float(np.log(m / (1 - m)) - np.log(pc / (1 - pc))))
        moment_a.append(float(moments(spn, [("C", 1), ("A", 1)], np.array([mu[-1], 0.0]))[1]))
        q = table[..., 1] * m / pc + table[..., 0] * (1 - m) / (1 - pc)
        jeffrey_a.append(float(q[1].sum()))
    hard = float(table[1, :, 1].sum() / pc)
    gaps = np.abs(np.asarray(moment_a) - hard)
    return {
        "m": ms, "multiplier_newton": mu, "multiplier_jeffrey": mu_jeffrey,
        "moment_A1_backprop": moment_a, "moment_A1_jeffrey": jeffrey_a,
        "hard_evidence_posterior_A1": hard,
        "multiplier_max_abs_difference": float(np.max(np.abs(np.subtract(mu, mu_jeffrey)))),
        "moment_max_abs_difference": float(np.max(np.abs(np.subtract(moment_a, jeffrey_a)))),
        "gap_to_hard_evidence": gaps,
        "gap_order_in_one_minus_m": fitted_order(1 - ms[ms > 0.9], gaps[ms > 0.9], 1e-14),
    }


def run(config: SPNInferenceConfig, folder: RunFolder, progress: Progress) -> dict:
    """All checks, then the figure and the table of the spec's numbers."""
    count, points = config.sizes()
    bn = example_bayes_net()
    spn = bn.to_spn()
    try:
        from pgmpy.inference import VariableElimination

        ve = VariableElimination(bn.to_pgmpy())
    except ImportError:
        ve = None
        folder.log("pgmpy is not installed (the `peers` extra): the pgmpy comparisons are null")
    progress(1, TOTAL_STEPS, "the spec's numbers for evidence C = 1")
    results: dict = {"pgmpy_available": ve is not None, "spn_nodes": len(spn.nodes),
                     "spec_check": spec_check(spn, bn, ve)}
    progress(2, TOTAL_STEPS, "every evidence set: enumeration and pgmpy variable elimination")
    results["bayes_net"] = bayes_net_checks(spn, bn, ve)
    progress(3, TOTAL_STEPS, f"{count} random complete, decomposable SPNs against enumeration")
    results["random_spns"] = random_spn_checks(config, count)
    results["validation"] = validation_messages()
    progress(4, TOTAL_STEPS, "I-projection: Newton through log S against SLSQP on the joint table")
    results["i_projection"] = projection_checks(spn, bn)
    progress(5, TOTAL_STEPS, "soft evidence q(C=1) = m: Jeffrey's rule and the hard-evidence limit")
    results["soft_evidence"] = soft_evidence_sweep(spn, bn, points)
    results["backward_multipliers"] = multiplier_checks(spn)
    results["invalid_spns"] = invalid_spn_checks(config, count)
    projections = results["i_projection"].values()
    results["summary"] = {
        "max_abs_error_vs_enumeration": max(results["bayes_net"]["max_abs_error"]["derivatives_vs_enumeration"],
                                            results["bayes_net"]["max_abs_error"]["posteriors_vs_enumeration"],
                                            results["random_spns"]["max_derivative_abs_error"],
                                            results["random_spns"]["max_posterior_abs_error"]),
        "max_abs_error_vs_pgmpy": None if ve is None else max(
            results["bayes_net"]["max_abs_error"]["derivatives_vs_pgmpy"],
            results["bayes_net"]["max_abs_error"]["posteriors_vs_pgmpy"]),
        "max_multiplier_difference_vs_slsqp": max(v["multiplier_max_abs_difference"] for v in projections),
        "max_table_difference_vs_slsqp": max(v["table_max_abs_difference"] for v in projections),
        "backward_vs_multipliers_max_abs_difference": results["backward_multipliers"]["max_abs_difference"],
        "invalid_spns_min_marginal_error": min(results["invalid_spns"]["random_min_error"]["not_complete"],
                                               results["invalid_spns"]["random_min_error"]["not_decomposable"]),
    }
    for key, value in results["summary"].items():
        folder.log(f"{key}: {value}")
    progress(6, TOTAL_STEPS, "figure and table")
    folder.save_figure(spn_figure(results), "spn_inference")
    folder.save_table(spec_table(results["spec_check"]), "spec_numbers")
    folder.save_table(projection_table(results["i_projection"]), "i_projection")
    progress(7, TOTAL_STEPS, "done")
    return results


def spn_figure(results: dict):
    """Three panels: the derivatives for `C = 1` (backprop bars, enumeration and pgmpy markers);
    the soft-evidence multiplier `mu(m)` (Newton vs Jeffrey's rule) and the backprop moment of
    `A = 1` tending to the hard-evidence posterior; the random-SPN errors against network size."""
    fig, axes = plots.figure(ncols=3, panel_size=(4.2, 3.6))
    spec = results["spec_check"]
    keys = ["A=0", "A=1", "B=0", "B=1", "C=0", "C=1"]
    x = np.arange(len(keys))
    axes[0].bar(x, [spec[k]["backprop"] for k in keys], color=plots.LINE_COLOURS[0], alpha=0.7, label="backprop dS/dλ")
    axes[0].plot(x, [spec[k]["enumeration"] for k in keys], "k_", ms=18, mew=2, label="enumeration")
    if results["pgmpy_available"]:
        axes[0].plot(x, [spec[k]["pgmpy"] for k in keys], "o", color=plots.LINE_COLOURS[1], ms=5, label="pgmpy VE")
    axes[0].set_xticks(x, [f"λ$_{{{k}}}$" for k in keys])
    axes[0].set_ylabel("P(x, e \\ X)")
    axes[0].set_title("evidence C = 1: derivatives are joint probabilities")
    axes[0].set_ylim(0, 0.75)
    axes[0].legend(loc="upper center", ncol=3)

    soft = results["soft_evidence"]
    one_minus = 1 - np.asarray(soft["m"])
    axes[1].loglog(one_minus, soft["gap_to_hard_evidence"], "o-", ms=3,
                   label=r"$|E_q[\phi_{A=1}] - P(A{=}1|C{=}1)|$")
    axes[1].loglog(one_minus, np.abs(np.subtract(soft["multiplier_newton"], soft["multiplier_jeffrey"])) + 1e-17,
                   "s", ms=3, label=r"$|\mu_{Newton} - \mu_{Jeffrey}|$")
    axes[1].set_xlabel(r"$1 - m$,  soft evidence $q(C{=}1) = m$")
    axes[1].set_ylabel("absolute difference")
    axes[1].set_title(f"hard-evidence limit: order {soft['gap_order_in_one_minus_m']:.3f}")
    axes[1].legend(loc="best")

    rnd = results["random_spns"]
    axes[2].semilogy(rnd["nodes"], np.maximum(rnd["derivative_abs_error"], 1e-18), "o", ms=3, label="dS/dλ")
    axes[2].semilogy(rnd["nodes"], np.maximum(rnd["posterior_abs_error"], 1e-18), "x", ms=3, label="posteriors")
    axes[2].axhline(np.finfo(float).eps, color=plots.OKABE_ITO["black"], ls=":", lw=0.8, label="float64 eps")
    axes[2].set_xlabel("SPN nodes")
    axes[2].set_ylabel("max abs error vs enumeration")
    axes[2].set_title(f"{rnd['count']} random SPNs ({min(rnd['variables'])}-{max(rnd['variables'])} variables)")
    axes[2].legend(loc="best")
    return fig


def spec_table(spec: dict) -> Table:
    """The spec's numbers for `C = 1` against backprop, enumeration and pgmpy."""
    rows = [[key.replace("|", " given "), v["spec"], v["backprop"], v["enumeration"],
             "n/a" if v["pgmpy"] is None else v["pgmpy"]]
            for key, v in spec.items() if isinstance(v, dict)]
    return Table(columns=["quantity", "spec", "backprop", "enumeration", "pgmpy VE"], rows=rows,
                 caption="Evidence C = 1 on A -> B, A -> C: derivatives of the network polynomial (float64)",
                 label="tab:spn-spec-numbers", digits=12)


def projection_table(proj: dict) -> Table:
    """Newton multipliers (backprop through log S) against SLSQP's KKT multipliers."""
    rows = []
    for label, v in proj.items():
        for f, mn, ms in zip(v["features"], v["multipliers_newton"], v["multipliers_slsqp"]):
            rows.append([label, f, float(mn), float(ms), abs(float(mn) - float(ms)), v["table_max_abs_difference"]])
    return Table(columns=["constraints", "feature", "mu (Newton, backprop)", "mu (SLSQP KKT)", "abs. difference",
                          "max abs. difference of q"], rows=rows,
                 caption="I-projection multipliers: Newton on grad log S(mu) = m against a direct constrained solve",
                 label="tab:spn-i-projection", digits=10)


EXPERIMENT = Experiment(
    name="spn-inference",
    description="SPNs: backprop through the network polynomial is exact inference; I-projection multipliers",
    config=SPNInferenceConfig(),
    run=run,
    headline=(
        "spec_check.max_abs_error_vs_spec",
        "summary.max_abs_error_vs_enumeration",
        "summary.max_abs_error_vs_pgmpy",
        "summary.max_multiplier_difference_vs_slsqp",
        "summary.max_table_difference_vs_slsqp",
        "summary.backward_vs_multipliers_max_abs_difference",
        "summary.invalid_spns_min_marginal_error",
    ),
    figures={"spn_inference": "spn_inference"},
)
