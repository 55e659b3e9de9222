"""kmeans_xp: k-means written once against the Python Array API standard.

NumPy in, NumPy out; a torch tensor on ``cuda:0`` in, tensors on ``cuda:0`` out; the same for
CuPy, array-api-strict and any namespace ``array_api_compat`` knows.  Importing this package
imports neither torch nor CuPy (nor scipy, pandas, matplotlib or tqdm: ``kmeans_xp.plotting``
imports matplotlib only when one of its functions runs).
"""

from . import metrics, plotting
from ._kmeans import KMeans, k_means, kmeans_plusplus
from ._select import SelectKResult, knee_point, select_k
from ._validation import ConvergenceWarning, InvalidParameterError, NotFittedError

__all__ = [
    "ConvergenceWarning",
    "InvalidParameterError",
    "KMeans",
    "NotFittedError",
    "SelectKResult",
    "k_means",
    "kmeans_plusplus",
    "knee_point",
    "metrics",
    "plotting",
    "select_k",
]
__version__ = "0.1.0"
