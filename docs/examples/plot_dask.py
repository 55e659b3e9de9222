"""
Dask arrays: data in blocks, beyond one machine
===============================================

A Dask array chunked along its rows: each Lloyd iteration is one map-reduce over the blocks
(on a ``distributed`` cluster, on its workers), with the same kernels as an in-memory fit.
Here Dask's default threaded scheduler runs it; with ``distributed.Client(...)`` nothing
else changes.
"""

import dask.array as da
import numpy as np

from kmeans_xp import KMeans

rng = np.random.default_rng(0)
centres = rng.uniform(-10, 10, size=(6, 4))
Xn = (centres[rng.integers(0, 6, 20_000)] + rng.normal(size=(20_000, 4))).astype(np.float32)
X = da.from_array(Xn, chunks=(5_000, 4))  # 4 row blocks

km = KMeans(n_clusters=6, random_state=0).fit(X)
print("centres:", type(km.cluster_centers_).__name__, km.cluster_centers_.shape)
print("labels:", type(km.labels_).__name__, km.labels_.chunks)
print("n_iter:", km.n_iter_, " inertia:", round(km.inertia_, 1))
print("predict is lazy:", type(km.predict(X)).__name__)
