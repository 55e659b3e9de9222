"""
A batch job: many small problems at once
=========================================

``batched_k_means`` clusters B independent problems of shape (n, d) in one job (one host
synchronisation per iteration for all of them), each with ``KMeans`` semantics and its own
seed: per-user histories, per-image colour palettes, per-series segments.
"""

import numpy as np

from kmeans_xp import KMeans, batched_k_means, problem_seeds

rng = np.random.default_rng(0)
B, n, d, k = 50, 200, 3, 4  # e.g. 50 images, 200 pixels each, RGB, a palette of 4
X = rng.uniform(0, 1, size=(B, n, d)).astype(np.float32)

centers, labels, inertia, n_iter = batched_k_means(X, n_clusters=k, random_state=0)
print(centers.shape, labels.shape, inertia.shape)

# %%
# Problem b is exactly ``KMeans(random_state=problem_seeds(0, B)[b])`` on ``X[b]``:
seeds = problem_seeds(0, B)
one = KMeans(n_clusters=k, random_state=int(seeds[7])).fit(X[7])
print("problem 7 alone has the same labels:", bool((one.labels_ == labels[7]).all()))
