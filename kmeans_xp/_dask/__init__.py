"""k-means on Dask arrays: the drivers that run a fit per block on a Dask cluster.

A ``dask.array`` chunked along its rows goes in; the driver never gathers X.  Every pass over
X is one *map-reduce* (:meth:`DaskBlocks.run`): a task per row block runs the fit's kernel
set on that block, in the same working coordinates as an in-memory fit, and returns small
host results (centre sums, counts, inertia, a few rows); a tree of reduce tasks adds them up
**in block order**, so the result does not depend on which worker ran what, or when.

- :mod:`._blocks`: the frame, the block tasks and the map-reduce every driver shares;
- :mod:`._lloyd`: ``KMeans.fit`` (k-means|| and the other initialisations, Lloyd) and
  ``kmeans_plusplus``;
- :mod:`._minibatch`: ``MiniBatchKMeans.partial_fit`` (one mini-batch step per call, the
  array being the batch);
- :mod:`._apply`: ``predict``, ``transform``, ``score`` of a fitted model.

Importing this package does not import Dask: every ``import dask`` is inside a function, and
``kmeans_xp`` only imports this package when a Dask array reaches it.
"""

from ._apply import predict, score, transform
from ._blocks import (
    FANIN,
    DaskBlocks,
    Frame,
    check_dask_X,
    is_dask_collection,
    last_fit_log,
    make_frame,
)
from ._lloyd import (
    DaskSource,
    _first_index,
    fit,
    kmeans_parallel,
    kmeans_plusplus,
    relocate_empty,
)
from ._minibatch import minibatch_fit, partial_fit

__all__ = [
    "FANIN",
    "DaskBlocks",
    "Frame",
    "_first_index",
    "check_dask_X",
    "fit",
    "is_dask_collection",
    "kmeans_parallel",
    "kmeans_plusplus",
    "last_fit_log",
    "DaskSource",
    "make_frame",
    "minibatch_fit",
    "partial_fit",
    "predict",
    "relocate_empty",
    "score",
    "transform",
]
