"""MLP projection: training on digits with least-action gradients equals training with jax.grad.

Data: scikit-learn's bundled 8x8 digits (1797 images, 10 classes), pixels
scaled to [0, 1], split into train and test sets by a permutation from
`seed`. Model: `lagrangian.MLP((64, hidden, ..., 10))` with `tanh` hidden
layers and an affine readout (logits); loss: softmax cross-entropy averaged
over the training set (`lagrangian.CrossEntropy`), full batch.

Two training runs start from the same initial parameters (from `seed`) and use
the same optax optimiser (`adam`, `learning_rate`):

    least action   dl/dtheta from `integrators.sweep` (the discrete action's
                   stationarity: forward pass, conjugate field p_k, local vjp per layer)
    jax.grad       dl/dtheta = jax.grad of the composed forward map

Each whole run is one `jax.lax.scan` over `steps` steps. Reported: both loss
curves and their largest absolute and relative difference over training, the
relative difference of the final parameters, the gradient error at step 0,
and the test accuracy of each final model. The curves coincide to rounding:
discrete time is the projection of the continuous theory that is exactly
backpropagation.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..data import digits
from ..harness.metrics import compare_gradients
from ..config import check_quick
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table


@dataclass(frozen=True)
class MLPProjectionConfig:
    """Defaults of the MLP-projection experiment.

    seed: PRNG seed of the initial parameters and of the train/test split.
    hidden: comma-separated hidden widths.
    steps: full-batch training steps (the quick preset runs 40).
    learning_rate: adam's learning rate.
    test_fraction: share of the digits held out for the test accuracy.
    quick: the small preset (40 steps, one hidden layer of 32).
    """

    seed: int = 0
    hidden: str = "64,32"
    steps: int = 400
    learning_rate: float = 0.01
    test_fraction: float = 0.25
    quick: bool = False

    def __post_init__(self):
        try:
            widths = [int(w) for w in self.hidden.split(",") if w.strip()]
        except ValueError:
            raise ValueError(f"config key 'hidden' must be comma-separated integers; got {self.hidden!r}") from None
        if not widths or min(widths) < 1:
            raise ValueError(f"config key 'hidden' needs widths >= 1; got {self.hidden!r}")
        if self.steps < 1 or not self.learning_rate > 0 or not 0 < self.test_fraction < 1:
            raise ValueError("config keys need steps >= 1, learning_rate > 0 and 0 < test_fraction < 1; got "
                             f"{self.steps}, {self.learning_rate}, {self.test_fraction}")
        check_quick(self, ("hidden", "steps"))

    def sizes(self) -> tuple[tuple[int, ...], int]:
        """`(widths, steps)` actually run."""
        hidden, steps = ("32", 40) if self.quick else (self.hidden, self.steps)
        return (64, *(int(w) for w in hidden.split(",") if w.strip()), 10), steps


def digits_split(seed: int, test_fraction: float):
    """`(x_train, y_train, x_test, y_test)`: the digits (`experiments.data.digits`) in the order
    of `seed`, the first `test_fraction` of them for testing."""
    x, y = digits(seed)
    n_test = int(round(test_fraction * len(y)))
    y = y.astype(np.int32)
    return jnp.asarray(x[n_test:]), jnp.asarray(y[n_test:]), jnp.asarray(x[:n_test]), jnp.asarray(y[:n_test])


def train(system, theta0, x, y, steps: int, learning_rate: float, gradient: str):
    """`(final theta, losses[steps])` of full-batch adam with `gradient` ``"least-action"`` or ``"jax-grad"``.
    `losses[i]` is the training loss at the parameters before step `i`."""
    import optax

    loss = lagrangian.CrossEntropy(labels=y)
    optimiser = optax.adam(learning_rate)

    def value_and_grad(theta):
        if gradient == "least-action":
            sol = integrators.sweep(system, theta, x, loss, check=False)
            return sol.loss, sol.grad
        return jax.value_and_grad(lambda th: loss(integrators.output(system, th, x)))(theta)

    def step(carry, _):
        theta, state = carry
        value, grads = value_and_grad(theta)
        updates, state = optimiser.update(grads, state, theta)
        return (optax.apply_updates(theta, updates), state), value

    (theta, _), losses = jax.jit(lambda th: jax.lax.scan(step, (th, optimiser.init(th)), None, length=steps))(theta0)
    return theta, np.asarray(losses)


def accuracy(system, theta, x, y) -> float:
    logits = integrators.output(system, theta, x)
    return float(jnp.mean(jnp.argmax(logits, axis=-1) == y))


def run(config: MLPProjectionConfig, folder: RunFolder, progress: Progress) -> dict:
    widths, steps = config.sizes()
    total = 4
    x_train, y_train, x_test, y_test = digits_split(config.seed, config.test_fraction)
    system = lagrangian.MLP(widths, activation="tanh", readout=True)
    theta0 = system.init(jax.random.key(config.seed))
    folder.log(f"digits: {len(y_train)} train, {len(y_test)} test; MLP {widths}; {steps} adam steps")

    progress(1, total, "gradient at the initial parameters: least action vs jax.grad")
    loss = lagrangian.CrossEntropy(labels=y_train)
    first = compare_gradients(integrators.sweep(system, theta0, x_train, loss).grad,
                              jax.grad(lambda th: loss(integrators.output(system, th, x_train)))(theta0))
    runs = {}
    for i, method in enumerate(("least-action", "jax-grad")):
        progress(2 + i, total, f"training with {method} gradients ({steps} steps)")
        theta, losses = train(system, theta0, x_train, y_train, steps, config.learning_rate, method)
        runs[method] = {"theta": theta, "losses": losses,
                        "train_accuracy": accuracy(system, theta, x_train, y_train),
                        "test_accuracy": accuracy(system, theta, x_test, y_test)}
    la, ref = runs["least-action"], runs["jax-grad"]
    diff = np.abs(la["losses"] - ref["losses"])
    params = compare_gradients(la["theta"], ref["theta"])
    results = {
        "setup": {"widths": list(widths), "steps": steps, "optimiser": f"optax.adam({config.learning_rate:g})",
                  "train_size": int(len(y_train)), "test_size": int(len(y_test))},
        "initial_gradient": {k: v for k, v in first.items() if k != "per_leaf"},
        "loss_curves": {"least_action": la["losses"].tolist(), "jax_grad": ref["losses"].tolist()},
        "max_abs_loss_difference": float(diff.max()),
        "max_relative_loss_difference": float(np.max(diff / np.abs(ref["losses"]))),
        "final_parameters_relative_difference": params["relative_l2_error"],
        "final_loss": {"least_action": float(la["losses"][-1]), "jax_grad": float(ref["losses"][-1])},
        "train_accuracy": {"least_action": la["train_accuracy"], "jax_grad": ref["train_accuracy"]},
        "test_accuracy": {"least_action": la["test_accuracy"], "jax_grad": ref["test_accuracy"]},
    }
    folder.log(f"loss curves differ by at most {results['max_abs_loss_difference']:.3e}; test accuracy "
               f"{la['test_accuracy']:.4f} (least action) vs {ref['test_accuracy']:.4f} (jax.grad)")

    progress(4, total, "figure and table")
    fig, axes = plots.figure(ncols=2, panel_size=(5.0, 4.0))
    ks = np.arange(steps)
    plots.training_curves(axes[0], ks, {"least-action gradient": la["losses"], "jax.grad": ref["losses"]},
                          ylabel="training cross-entropy", title=f"digits, MLP {'-'.join(map(str, widths))}, adam")
    axes[1].semilogy(ks, np.maximum(diff, 1e-18), color=plots.OKABE_ITO["vermillion"])
    axes[1].axhline(np.finfo(np.float64).eps, color="k", ls=":", lw=0.8, label="float64 eps")
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("|loss(least action) - loss(jax.grad)|")
    axes[1].set_title(f"max difference {diff.max():.1e}" + (" (exact zeros drawn at 1e-18)" if (diff == 0).any() else ""))
    axes[1].legend(loc="best")
    folder.save_figure(fig, "training_curves")
    folder.save_table(Table(
        columns=["gradient", "final training loss", "train accuracy", "test accuracy"],
        rows=[["least action (integrators.sweep)", la["losses"][-1].item(), la["train_accuracy"], la["test_accuracy"]],
              ["jax.grad of the forward map", ref["losses"][-1].item(), ref["train_accuracy"], ref["test_accuracy"]]],
        caption=(f"Digits MLP {widths}, {steps} full-batch adam steps from one seed: the loss curves differ by at "
                 f"most {diff.max():.2e} (absolute)."),
        label="tab:mlp-projection"), "training")
    return results


EXPERIMENT = Experiment(
    name="mlp-projection",
    description="digits MLP trained with least-action gradients and with jax.grad from one seed: identical curves",
    config=MLPProjectionConfig(),
    run=run,
    headline=("max_abs_loss_difference", "final_parameters_relative_difference", "test_accuracy.least_action",
              "test_accuracy.jax_grad"),
    figures={"mlp_projection_training_curves": "training_curves"},
)
