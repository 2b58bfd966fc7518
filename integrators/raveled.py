"""States that are pytrees of arrays, stepped as the one flat vector of their leaves.

`ravel(y) = concatenate(leaf.ravel() for leaf in leaves(y))` is linear and invertible,
so a field on pytree states is the field on flat states

    f_flat(t, x, theta) = ravel(f(t, unravel(x), theta)),

every scheme acts on the flat state exactly as it would leaf by leaf (a Runge-Kutta
step is a linear combination of stage slopes), and the conjugate field of the flat
state is the cotangent of the pytree, raveled the same way. `solve`, `sweep` and
`diffeqsolve` ravel a pytree state at their boundary and unravel what they return;
inside, the one loop sees arrays only.
"""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree, Scalar

from lagrangian import LayerMaps, VectorField


class Raveling(eqx.Module):
    """The structure of a pytree state: its tree definition and the shape of each leaf.

    Example:
        >>> raveling = integrators.Raveling.of({"q": jnp.zeros(2), "v": jnp.array(1.0)})
        >>> raveling.ravel({"q": jnp.array([1.0, 2.0]), "v": jnp.array(3.0)})
        Array([1., 2., 3.], dtype=float64)
        >>> raveling.unravel(jnp.array([1.0, 2.0, 3.0]))["v"]
        Array(3., dtype=float64)
    """

    treedef: Any = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)

    @classmethod
    def of(cls, tree: PyTree, name: str = "x0") -> "Raveling":
        """The structure of `tree`, whose leaves must be arrays of one floating-point dtype."""
        leaves, treedef = jax.tree.flatten(tree)
        if not leaves:
            raise ValueError(f"{name} is a pytree with no arrays")
        dtypes = {jnp.result_type(leaf) for leaf in leaves}
        if len(dtypes) != 1 or not jnp.issubdtype(dtypes.pop(), jnp.floating):
            raise ValueError(f"{name} must be a pytree of arrays of one floating-point dtype; got dtypes "
                             f"{sorted(str(jnp.result_type(leaf)) for leaf in leaves)}")
        return cls(treedef=treedef, shapes=tuple(tuple(jnp.shape(leaf)) for leaf in leaves))

    @property
    def size(self) -> int:
        """The length `n` of the flat state."""
        return sum(math.prod(shape) for shape in self.shapes)

    def ravel(self, tree: PyTree) -> Float[Array, " n"]:
        """`ravel(y)`: the leaves of `tree` flattened and concatenated."""
        leaves = self.treedef.flatten_up_to(tree)
        return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)) for leaf in leaves])

    def unravel(self, flat: Float[Array, " n"]) -> PyTree:
        """`unravel(x)`: the pytree whose `ravel` is `flat`."""
        ends = np.cumsum([math.prod(shape) for shape in self.shapes])[:-1]
        leaves = [part.reshape(shape) for part, shape in zip(jnp.split(flat, ends), self.shapes)]
        return jax.tree.unflatten(self.treedef, leaves)

    def unravel_stacked(self, flats: Float[Array, "m n"]) -> PyTree:
        """`unravel` of each row: a pytree whose leaves have the leading axis `m`."""
        return jax.vmap(self.unravel)(flats)


class RaveledField(VectorField):
    """`f_flat(t, x, theta) = ravel(f(t, unravel(x), theta))`: a field on pytree states as a
    field on the flat state (separable when `f` is, with `(q, v)` the two halves of the flat
    state).

    Example:
        >>> class Rotation(lagrangian.VectorField):                # f on the state {"q": q, "v": v}
        ...     state_dim: int = 2
        ...     def init(self, key, dtype=jnp.float64):
        ...         return {}
        ...     def __call__(self, t, x, theta):
        ...         return {"q": x["v"], "v": -x["q"]}
        >>> raveling = integrators.Raveling.of({"q": jnp.zeros(1), "v": jnp.zeros(1)})
        >>> integrators.RaveledField(field=Rotation(), raveling=raveling)(0.0, jnp.array([1.0, 2.0]), {})
        Array([ 2., -1.], dtype=float64)
    """

    field: VectorField
    raveling: Raveling

    @property
    def state_dim(self) -> int:
        return self.raveling.size

    @property
    def separable(self) -> bool:
        return getattr(self.field, "separable", False)

    def init(self, key, dtype=jnp.float64):
        return self.field.init(key, dtype)

    def __call__(self, t: Scalar, x: Float[Array, " n"], theta: PyTree) -> Float[Array, " n"]:
        return self.raveling.ravel(self.field(t, self.raveling.unravel(x), theta)).astype(x.dtype)


def is_pytree_state(x0) -> bool:
    """Whether `x0` is a pytree state rather than one array: an array, a Python or numpy number,
    and a (nested) list or tuple of numbers are arrays, as `jnp.asarray` reads them."""
    if eqx.is_array_like(x0):
        return False
    leaves = jax.tree.leaves(x0)
    if isinstance(x0, (list, tuple)) and all(isinstance(leaf, (int, float, np.number)) for leaf in leaves):
        return False
    return True


def ravel_state(system: LayerMaps, x0) -> tuple[LayerMaps, Array, Raveling | None]:
    """`(system, x0, raveling)`: for a pytree state, the discretised field on the flat state,
    `ravel(x0)` and the structure to unravel with; otherwise `system`, `x0` as an array and `None`."""
    if not is_pytree_state(x0):
        return system, jnp.asarray(x0), None
    field = getattr(system, "field", None)
    if not isinstance(field, VectorField):
        raise TypeError(f"a pytree state x0 needs a discretised VectorField (integrators.discretise); "
                        f"{type(system).__name__} steps arrays of shape (n,) or (batch, n)")
    raveling = Raveling.of(x0)
    flat = eqx.tree_at(lambda s: s.field, system, RaveledField(field=field, raveling=raveling))
    return flat, raveling.ravel(x0), raveling
