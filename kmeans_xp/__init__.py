"""kmeans_xp: k-means written once against the Python Array API standard.

NumPy in, NumPy out; a torch tensor on ``cuda:0`` in, tensors on ``cuda:0`` out; the same for
CuPy, array-api-strict and any namespace ``array_api_compat`` knows.  Importing this package
imports neither torch nor CuPy (nor scipy, pandas, matplotlib or tqdm: ``kmeans_xp.plotting``
imports matplotlib only when one of its functions runs).
"""

from . import metrics, plotting
from ._batched import BatchedKMeans, batched_k_means, problem_seeds
from ._check import show_config
from ._exceptions import ConvergenceWarning, InvalidParameterError, NotFittedError
from ._kmeans import KMeans, k_means, kmeans_plusplus
from ._minibatch import MiniBatchKMeans
from ._select import SelectKResult, knee_point, select_k

__all__ = [
    "BatchedKMeans",
    "ConvergenceWarning",
    "InvalidParameterError",
    "KMeans",
    "MiniBatchKMeans",
    "NotFittedError",
    "SelectKResult",
    "batched_k_means",
    "k_means",
    "kmeans_plusplus",
    "knee_point",
    "metrics",
    "plotting",
    "problem_seeds",
    "select_k",
    "show_config",
]
__version__ = "0.1.0"
