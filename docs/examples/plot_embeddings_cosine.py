"""
Embeddings: spherical k-means with the cosine metric
=====================================================

Sentence or image embeddings are compared by angle.  ``metric="cosine"`` is spherical
k-means: rows and centres have unit length, a centre is the renormalised mean of its rows,
and ``inertia_`` is the sum of cosine distances ``1 - cos``.
"""

import numpy as np

from kmeans_xp import KMeans, select_k
from kmeans_xp.plotting import plot_clusters, plot_elbow

rng = np.random.default_rng(0)
topics = rng.normal(size=(5, 64))
# 1000 "embeddings": a topic direction, a random length and some noise
emb = topics[rng.integers(0, 5, 1000)] + 0.6 * rng.normal(size=(1000, 64))
emb *= rng.uniform(0.5, 3.0, size=(1000, 1))
emb = emb.astype(np.float32)

result = select_k(
    emb, range(2, 10), metric="cosine", criterion="silhouette", random_state=0, progress=False
)
print("best k by the silhouette:", result.best_k)
plot_elbow(result, score="silhouette")  # the y axis: sum of cosine distances

# %%
km = KMeans(n_clusters=result.best_k, metric="cosine", random_state=0).fit(emb)
print("centres have unit length:", np.allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1))
# the rows scaled to unit length, as the model sees them (the centres have unit length)
unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
plot_clusters(unit, model=km)  # titled "spherical k-means clusters"
