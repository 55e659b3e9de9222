"""Host randomness: the draws every path makes from a NumPy ``RandomState`` or ``Generator``.

Random numbers come from a host generator (``_validation.check_random_state``) and are drawn
here, in scikit-learn's order, whatever the backend: the same seed gives the same initial
centres, mini-batches and seeds on every backend and device.  Each draw has one function,
for either kind of generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["integers", "uniform01", "uniforms"]


def uniforms(rng: Any, size: Any = None) -> Any:
    """Uniforms in [0, 1) as ``choice(..., p=...)`` draws them (a float for ``size=None``)."""
    if isinstance(rng, np.random.RandomState):
        return rng.random_sample(size)
    return rng.random(size)


def uniform01(rng: Any) -> float:
    """One uniform in [0, 1): the draw ``choice(n, p=...)`` makes."""
    return float(uniforms(rng))


def integers(rng: Any, high: int, size: Any = None) -> Any:
    """Integers in [0, high): ``rng.randint(0, high, size)`` (scikit-learn's draw), or a
    Generator's ``integers``."""
    if isinstance(rng, np.random.RandomState):
        return rng.randint(0, high, size=size)
    return rng.integers(0, high, size=size)
