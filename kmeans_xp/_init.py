"""Initial centres: greedy k-means++, random rows, a user array or a callable.

Random numbers come from a host NumPy generator and are consumed in the same order as
scikit-learn's, so an int ``random_state`` gives the same seeds on every backend (and as
scikit-learn, up to floating-point near-ties).  k-means++ runs on the data's device: the
host only draws uniforms, which travel to the device; nothing travels back.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._data import ChunkedData, accumulate
from ._validation import as_namespace, check_centers_shape


def _uniform01(rng: Any) -> float:
    """One uniform in [0, 1): the draw ``choice(n, p=...)`` makes (RandomState or Generator)."""
    return float(rng.random_sample() if isinstance(rng, np.random.RandomState) else rng.random())


def _row_sq_norms(data: ChunkedData) -> Any:
    xp = data.xp
    parts = [xp.sum(Xt * Xt, axis=1) for _, _, Xt, _ in data.chunks()]
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def _sq_dist_to(data: ChunkedData, x_sq: Any, start: int, stop: int, Xt: Any, C: Any,
                c_sq: Any) -> Any:
    """Squared distances (rows, m) of a chunk to the m rows of ``C``, clipped at 0."""
    xp = data.xp
    D = x_sq[start:stop, None] - 2.0 * xp.matmul(Xt, xp.matrix_transpose(C)) + c_sq[None, :]
    return xp.clip(D, min=0.0)


def _closest_sq_dist(data: ChunkedData, x_sq: Any, center: Any, closest: Any) -> Any:
    """Squared distance (n,) of every row to ``center`` (1, d), or the minimum with ``closest``."""
    xp = data.xp
    c_sq = xp.sum(center * center, axis=1)
    parts = []
    for s, e, Xt, _ in data.chunks():
        d = _sq_dist_to(data, x_sq, s, e, Xt, center, c_sq)[:, 0]
        parts.append(d if closest is None else xp.minimum(closest[s:e], d))
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def kmeans_plusplus_working(data: ChunkedData, n_clusters: int, rng: Any,
                            n_local_trials: int | None = None) -> tuple[Any, Any]:
    """Greedy k-means++ (Arthur & Vassilvitskii; scikit-learn's variant) on ``data``.

    Returns the centres in working coordinates (k, d) and their row indices (k,), both on
    the data's device.  Memory: O(n) vectors plus one (chunk x trials) block at a time.
    """
    xp = data.xp
    n, dev = data.n, data.device
    acc = data.accumulator_dtype()
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(n_clusters))
    w = data.weights

    # the first centre: choice(n, p=w / w.sum()) as NumPy does it (cdf, then searchsorted)
    u = _uniform01(rng)
    if w is None:
        first = xp.asarray([min(int(u * n), n - 1)], device=dev)
    else:
        cdf = xp.cumulative_sum(xp.astype(w, acc))
        u_dev = xp.asarray([u], dtype=acc, device=dev) * cdf[-1]
        first = xp.clip(xp.searchsorted(cdf, u_dev, side="right"), max=n - 1)
    first = xp.astype(first, xp.int64)

    x_sq = _row_sq_norms(data)
    center = data.take_rows(first)
    centers, indices = [center], [first]
    closest = _closest_sq_dist(data, x_sq, center, None)
    weighted = closest if w is None else closest * w
    current_pot = xp.astype(xp.sum(weighted), acc)

    for _ in range(1, n_clusters):
        rand = xp.asarray(rng.uniform(size=n_local_trials), dtype=acc, device=dev) * current_pot
        cum = xp.cumulative_sum(xp.astype(weighted, acc))
        cand = xp.clip(xp.searchsorted(cum, rand), max=n - 1)
        cand_rows = data.take_rows(cand)
        c_sq = xp.sum(cand_rows * cand_rows, axis=1)
        pots = None
        for s, e, Xt, wc in data.chunks():
            D = xp.minimum(_sq_dist_to(data, x_sq, s, e, Xt, cand_rows, c_sq),
                           closest[s:e, None])
            p = xp.sum(D, axis=0) if wc is None else xp.matmul(wc, D)
            pots = accumulate(pots, xp.astype(p, acc))
        best = xp.reshape(xp.argmin(pots), (1,))
        current_pot = xp.min(pots)
        best_id = xp.astype(xp.take(cand, best), xp.int64)
        center = xp.take(cand_rows, best, axis=0)
        closest = _closest_sq_dist(data, x_sq, center, closest)
        weighted = closest if w is None else closest * w
        centers.append(center)
        indices.append(best_id)
    return xp.concat(centers), xp.concat(indices)


def random_working(data: ChunkedData, n_clusters: int, rng: Any,
                   host_weights: np.ndarray | None) -> tuple[Any, Any]:
    """``n_clusters`` distinct rows drawn with probability proportional to the weights.

    The draw happens on the host exactly as scikit-learn's (``choice`` without replacement
    and with ``p``); only the k indices travel to the device.
    """
    xp = data.xp
    n = data.n
    p = np.full(n, 1.0 / n) if host_weights is None else host_weights / host_weights.sum()
    seeds = rng.choice(n, size=n_clusters, replace=False, p=p)
    idx = xp.asarray(np.asarray(seeds, dtype=np.int64), device=data.device)
    return data.take_rows(idx), idx


def check_user_centers(centers: Any, n_clusters: int, xp: Any, device: Any, dtype: Any,
                       n_features: int, name: str = "init") -> Any:
    """A user's centres (any namespace, list): converted, shape- and NaN-checked.  One sync."""
    C = as_namespace(centers, name, xp, device, dtype)
    check_centers_shape(C, n_clusters, n_features)
    if not bool(xp.all(xp.isfinite(C))):
        raise ValueError(f"The initial centers given in '{name}' contain NaN or infinity.")
    return C


def initial_centers(data: ChunkedData, init: Any, kind: str, n_clusters: int, rng: Any,
                    host_weights: Any = None) -> Any:
    """Initial centres in working coordinates for one run.

    For ``kind == "array"``, ``init`` has been through :func:`check_user_centers` already.
    """
    if kind == "k-means++":
        return kmeans_plusplus_working(data, n_clusters, rng)[0]
    if kind == "random":
        return random_working(data, n_clusters, rng, host_weights)[0]
    if kind == "callable":
        init = check_user_centers(init(data.X, n_clusters, random_state=rng), n_clusters,
                                  data.xp, data.device, data.dtype, data.d)
    return data.to_working_coords(init)
