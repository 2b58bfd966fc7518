"""The data sets the experiments train on, loaded in one place.

- `digits`: scikit-learn's 1797 handwritten digits (8 x 8 pixels), the data of the
  mlp-projection, physical-learning, local-dynamics and noether-charges experiments.
"""

from __future__ import annotations

import numpy as np


def digits(seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images `(1797, 64)` with pixels scaled to [0, 1] (`/ 16`) and
    integer labels `(1797,)`. With `seed`, in the order of
    `np.random.default_rng(seed).permutation(1797)` (split it as the experiment needs);
    without, in the file's order.

    Example:
        >>> from experiments.data import digits
        >>> images, labels = digits(seed=0)
        >>> images.shape, float(images.max()), sorted(set(labels.tolist())) == list(range(10))
        ((1797, 64), 1.0, True)
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    images, labels = data.data / 16.0, data.target
    if seed is None:
        return images, labels
    order = np.random.default_rng(seed).permutation(labels.shape[0])
    return images[order], labels[order]
