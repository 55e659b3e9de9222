"""
PyTorch tensors, on the CPU or a GPU
====================================

The same code on a tensor: the fit, the scores and the PCA of the plot run on the tensor's
device (a GPU when there is one); the fitted arrays are tensors on that device.
"""

import torch

from kmeans_xp import KMeans, metrics
from kmeans_xp.plotting import plot_clusters

device = "cuda" if torch.cuda.is_available() else "cpu"
g = torch.Generator().manual_seed(0)
centres = torch.randn(4, 8, generator=g) * 5
X = (centres[torch.randint(0, 4, (2000,), generator=g)] + torch.randn(2000, 8, generator=g)).to(
    device
)

km = KMeans(n_clusters=4, random_state=0).fit(X)
print(type(km.cluster_centers_).__name__, km.cluster_centers_.device, km.cluster_centers_.dtype)
print("silhouette:", round(metrics.silhouette_score(X, km.labels_), 3))
print("distances to the centres:", tuple(km.transform(X[:5]).shape))
plot_clusters(X, model=km)  # PCA computed on the device; only 2 coordinates per row travel
