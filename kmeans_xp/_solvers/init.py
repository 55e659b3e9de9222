"""Initial centres: greedy k-means++, random rows, a user array or a callable.

Random numbers come from a host NumPy generator and are consumed in the same order as
scikit-learn's, so an int ``random_state`` gives the same seeds on every backend (and as
scikit-learn, up to floating-point near-ties).  k-means++ runs on the data's device: the
host only draws uniforms, which travel to the device; nothing travels back.  Its passes over
X (the potentials of the candidates, the closest-distance update) go through the fit's
kernel set, chunked by the number of candidates rather than by k.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._compat import index_dtype
from .._data import ChunkedData
from .._frame import Frame
from .._random import uniform01
from .._validation import as_namespace, check_centers_shape


def _first_index(data: ChunkedData, rng: Any) -> Any:
    """The first centre's row (1,): ``choice(n, p=w / w.sum())`` as NumPy draws it."""
    xp, n, dev, w = data.xp, data.n, data.device, data.weights
    u = uniform01(rng)
    if w is None:
        first = xp.asarray([min(int(u * n), n - 1)], device=dev)
    else:
        acc = data.accumulator_dtype()
        cdf = xp.cumulative_sum(xp.astype(w, acc))
        u_dev = xp.asarray([u], dtype=acc, device=dev) * cdf[-1]
        first = xp.clip(xp.searchsorted(cdf, u_dev, side="right"), max=n - 1)
    return xp.astype(first, index_dtype(xp))


def kmeans_plusplus_working(data: ChunkedData, n_clusters: int, rng: Any,
                            n_local_trials: int | None = None) -> tuple[Any, Any]:
    """Greedy k-means++ (Arthur & Vassilvitskii; scikit-learn's variant) on ``data``.

    Returns the centres in working coordinates (k, d) and their row indices (k,), both on
    the data's device.  Memory: O(n) vectors plus one (chunk x trials) block at a time,
    and the (k, d) result.
    """
    xp = data.xp
    n, dev = data.n, data.device
    acc = data.accumulator_dtype()
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(n_clusters))
    w = data.weights

    first = _first_index(data, rng)
    kern = data.kernels
    center = data.take_rows(first)
    indices = [first]
    closest = kern.kpp_update(data, None, center)  # accumulator dtype (float64 if any)
    w_acc = None if w is None else xp.astype(w, acc)
    weighted = closest if w is None else closest * w_acc
    current_pot = xp.astype(xp.sum(weighted), acc)

    # the steps' uniforms, drawn at once: the same numbers as one draw of m per step
    U = rng.uniform(size=(n_clusters - 1, n_local_trials))
    fused = kern.kpp_steps(data, closest, weighted, current_pot, U) if n_clusters > 1 else None
    if fused is not None:  # the kernel set ran every step in one call (JAX: one jit)
        indices.append(xp.astype(fused, index_dtype(xp)))
    else:  # the solver's loop over the steps
        for u in U:
            rand = xp.asarray(u, dtype=acc, device=dev) * current_pot
            cum = xp.cumulative_sum(xp.astype(weighted, acc, copy=False))
            cand = xp.clip(xp.searchsorted(cum, rand), max=n - 1)
            cand_rows = data.take_rows(cand)
            pots = kern.kpp_potentials(data, closest, cand_rows)
            best = xp.reshape(xp.argmin(pots), (1,))
            current_pot = xp.min(pots)
            best_id = xp.astype(xp.take(cand, best), index_dtype(xp))
            center = xp.take(cand_rows, best, axis=0)
            closest = kern.kpp_update(data, closest, center)
            weighted = closest if w is None else closest * w_acc
            indices.append(best_id)
    # the chosen rows, taken once: the chosen centres were not kept step by step (a list
    # of k rows, then their concatenation, held two (k, d) arrays at the end)
    indices = xp.concat(indices)
    return data.take_rows(indices), indices


def kmeans_parallel_working(data: ChunkedData, n_clusters: int, rng: Any, *,
                            oversampling_factor: float = 2.0, n_rounds: int = 5,
                            tol: float = 0.0) -> Any:
    """Scalable k-means++ ("k-means||", Bahmani et al. 2012) on ``data``.

    One centre is drawn as in k-means++; then each of ``n_rounds`` rounds keeps every row
    independently with probability ``min(1, l * w_i * D_i / phi)`` (``l =
    oversampling_factor * n_clusters``, ``D_i`` the squared distance to the nearest
    candidate so far, ``phi`` their weighted sum), so about ``l`` candidates join per round
    in one pass over X instead of k sequential passes.  The candidates, weighted by the
    weight of the rows nearest to each, are then reduced to ``n_clusters`` centres by
    weighted k-means++ and Lloyd on the (small) candidate set.

    The uniforms come from the host generator in chunks (the same numbers on every
    backend); one host sync per round (the number of candidates kept).  Returns the centres
    in working coordinates (k, d).
    """
    from .lloyd import lloyd

    xp, kern = data.xp, data.kernels
    acc = data.accumulator_dtype()
    w = data.weights
    ell = oversampling_factor * n_clusters
    cand = [data.take_rows(_first_index(data, rng))]
    closest = kern.kpp_update(data, None, cand[0])
    w_acc = None if w is None else xp.astype(w, acc)
    for _ in range(n_rounds):
        weighted = xp.astype(closest if w is None else closest * w_acc, acc)
        phi = xp.sum(weighted)
        picked = []
        for s, e in data.ranges():
            u = xp.asarray(rng.uniform(size=e - s), dtype=acc, device=data.device)
            picked.append(xp.nonzero(u * phi < ell * weighted[s:e])[0] + s)
        idx = xp.astype(xp.concat(picked), index_dtype(xp))
        if int(idx.shape[0]) == 0:  # the one host sync of the round
            break
        new = data.take_rows(idx)
        cand.append(new)
        closest = xp.minimum(closest, kern.assign(data, new)[1])
    cand = xp.concat(cand)
    if int(cand.shape[0]) <= n_clusters:  # too few distinct candidates: plain k-means++
        return kmeans_plusplus_working(data, n_clusters, rng)[0]
    # weight of each candidate: the weight of the rows nearest to it
    _, _, counts, _ = kern.lloyd_pass(data, cand)
    cdata = ChunkedData(cand, xp=xp, dtype=data.dtype, weights=counts, n_clusters=n_clusters,
                        kernels=kern)
    cdata.use_frame(Frame(mean_variance=data.mean_variance))  # already working coordinates
    c0 = kmeans_plusplus_working(cdata, n_clusters, rng)[0]
    return lloyd(cdata, c0, max_iter=300, tol=tol)[2]


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
                    host_weights: Any = None, options: dict | None = None) -> Any:
    """Initial centres in working coordinates for one run.

    For ``kind == "array"``, ``init`` has been through :func:`check_user_centers` already.
    """
    if kind == "k-means++":
        return kmeans_plusplus_working(data, n_clusters, rng)[0]
    if kind == "k-means||":
        return kmeans_parallel_working(data, n_clusters, rng, **(options or {}))
    if kind == "random":
        return random_working(data, n_clusters, rng, host_weights)[0]
    if kind == "callable":
        init = check_user_centers(init(data.X, n_clusters, random_state=rng), n_clusters,
                                  data.xp, data.device, data.dtype, data.d)
    return data.to_working_coords(init)
