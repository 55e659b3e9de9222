"""Lloyd's iteration, written once against the Array API standard.

The kernels ("assign a chunk", "accumulate a chunk's sums") are functions of their own so
that mini-batch and streaming variants can reuse them.  Per iteration there is exactly one
host sync: a Python ``float`` of a 0-d array that folds strict convergence, the centre
shift and the presence of empty clusters into one number.
"""

from __future__ import annotations

from typing import Any

from . import _ops
from ._data import ChunkedData, accumulate


def center_terms(centers: Any, xp: Any) -> tuple[Any, Any]:
    """``-2 * C.T`` (d, k) and ``||c||^2`` (k,), computed once per pass."""
    return -2.0 * xp.matrix_transpose(centers), xp.sum(centers * centers, axis=1)


def assign_chunk(Xt: Any, centers_m2t: Any, c_sq: Any, *, xp: Any, need_min: bool = False,
                 buffers: dict | None = None):
    """Labels of a chunk (first nearest centre) and, if asked, ``min_j ||c_j||^2 - 2 x.c_j``.

    ``buffers``: a dict kept for the fit, in which the distance block is reused.
    """
    D = _ops.partial_sq_distances(Xt, centers_m2t, c_sq, xp=xp, buffers=buffers)
    if need_min:
        mins, labels = _ops.min_argmin(D, xp=xp)
        return labels, mins
    return _ops.argmin_rows(D, xp=xp), None


def accumulate_chunk(Xt: Any, labels: Any, w: Any, n_clusters: int, *, xp: Any):
    """Weighted sums (k, d) and weights (k,) of a chunk's rows per label."""
    return _ops.cluster_sums(Xt, labels, w, n_clusters, xp=xp)


def _concat(parts: list, xp: Any) -> Any:
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def _weighted_total(values: Any, w: Any, data: ChunkedData) -> Any:
    """sum(w * values) of a chunk, as a 0-d array of the accumulator dtype."""
    xp = data.xp
    v = values if w is None else values * w
    return xp.astype(xp.sum(v), data.accumulator_dtype())


def lloyd_pass(data: ChunkedData, centers: Any, *, need_inertia: bool = False):
    """One assignment + accumulation pass: labels (n,), sums (k, d), counts (k,), inertia.

    Sums are accumulated chunk by chunk, so the pass holds one chunk's blocks at a time.
    """
    xp = data.xp
    k = int(centers.shape[0])
    m2t, c_sq = center_terms(centers, xp)
    labels, sums, counts, inertia = [], None, None, None
    for _, _, Xt, w in data.chunks():
        lab, mins = assign_chunk(Xt, m2t, c_sq, xp=xp, need_min=need_inertia,
                                 buffers=data.buffers)
        labels.append(lab)
        s, c = accumulate_chunk(Xt, lab, w, k, xp=xp)
        sums, counts = accumulate(sums, s), accumulate(counts, c)
        if need_inertia:
            dist = xp.clip(mins + xp.sum(Xt * Xt, axis=1), min=0.0)
            inertia = accumulate(inertia, _weighted_total(dist, w, data))
    return _concat(labels, xp), sums, counts, inertia


def _sq_dist_to_assigned(Xt: Any, centers: Any, labels: Any, data: ChunkedData) -> Any:
    return _ops.sq_dist_to_assigned(Xt, centers, labels, xp=data.xp, buffers=data.buffers)


def inertia_for_labels(data: ChunkedData, centers: Any, labels: Any) -> Any:
    """sum_i w_i ||x_i - c_{labels_i}||^2 by direct differences (accurate in float32)."""
    total = None
    for start, stop, Xt, w in data.chunks():
        total = accumulate(total, _weighted_total(
            _sq_dist_to_assigned(Xt, centers, labels[start:stop], data), w, data))
    return total


def labels_inertia(data: ChunkedData, centers: Any, *, return_inertia: bool = True):
    """Nearest-centre labels (n,) and the inertia (0-d), in one pass."""
    xp = data.xp
    m2t, c_sq = center_terms(centers, xp)
    labels, total = [], None
    for _, _, Xt, w in data.chunks():
        lab, _ = assign_chunk(Xt, m2t, c_sq, xp=xp, buffers=data.buffers)
        labels.append(lab)
        if return_inertia:
            total = accumulate(total, _weighted_total(_sq_dist_to_assigned(Xt, centers, lab, data), w,
                                                data))
    return _concat(labels, xp), total


def sq_distances(data: ChunkedData, centers: Any) -> Any:
    """Squared distances (n, k) to every centre, assembled chunk by chunk (``transform``)."""
    xp = data.xp
    m2t, c_sq = center_terms(centers, xp)
    parts = []
    for _, _, Xt, _ in data.chunks():
        D = _ops.partial_sq_distances(Xt, m2t, c_sq, xp=xp) + xp.sum(Xt * Xt, axis=1)[:, None]
        parts.append(xp.clip(D, min=0.0))
    return _concat(parts, xp)


def new_centers(sums: Any, counts: Any, old: Any, xp: Any) -> Any:
    """Means of the clusters; a cluster with no weight keeps its old centre (never NaN)."""
    has = counts > 0
    safe = xp.where(has, counts, xp.ones_like(counts))
    return xp.where(has[:, None], sums / safe[:, None], old)


def relocate_empty_clusters(data: ChunkedData, labels: Any, centers: Any, sums: Any,
                            counts: Any) -> tuple[Any, Any]:
    """Give each empty cluster the point farthest from its centre (scikit-learn's rule).

    Works on the sums, before averaging: the point's weighted coordinates leave its
    cluster's sum and become the empty cluster's sum.  A rare path: it reads X once more
    and sorts n distances.
    """
    xp = data.xp
    k = int(centers.shape[0])
    dist = _concat([_sq_dist_to_assigned(Xt, centers, labels[s:e], data)
                    for s, e, Xt, _ in data.chunks()], xp)
    if data.weights is not None:  # a zero-weight point cannot fill a cluster
        dist = xp.where(data.weights > 0, dist, xp.full_like(dist, -1.0))
    empty = xp.nonzero(counts == 0)[0]
    n_empty = int(empty.shape[0])
    far = xp.argsort(dist, descending=True, stable=True)[:n_empty]
    moved_x = data.take_rows(far)
    moved_w = (xp.ones((n_empty,), dtype=data.dtype, device=data.device)
               if data.weights is None else xp.take(data.weights, far))
    moved = moved_x * moved_w[:, None]
    ks = xp.arange(k, dtype=labels.dtype, device=data.device)
    from_old = xp.astype(xp.take(labels, far)[:, None] == ks[None, :], data.dtype)  # (e, k)
    to_new = xp.astype(empty[:, None] == ks[None, :], data.dtype)
    is_empty = counts == 0
    sums = sums - xp.matmul(xp.matrix_transpose(from_old), moved)
    counts = counts - xp.matmul(xp.matrix_transpose(from_old), moved_w[:, None])[:, 0]
    sums = xp.where(is_empty[:, None], xp.matmul(xp.matrix_transpose(to_new), moved), sums)
    counts = xp.where(is_empty, xp.matmul(xp.matrix_transpose(to_new), moved_w[:, None])[:, 0],
                      counts)
    return sums, counts


def kmeans_single_lloyd(data: ChunkedData, centers: Any, *, max_iter: int, tol: float,
                        verbose: int = 0):
    """One run of Lloyd's algorithm from ``centers`` (working coordinates).

    Returns ``labels, inertia, centers, n_iter`` with the semantics of scikit-learn's
    ``_kmeans_single_lloyd``: stop on unchanged labels (strict convergence) or on a
    squared centre shift <= ``tol``; after a ``tol`` stop (or ``max_iter``) one more
    assignment so that the labels match the returned centres.  ``inertia`` is a 0-d
    array in working units.
    """
    xp = data.xp
    minus_one = xp.asarray(-1.0, dtype=data.dtype, device=data.device)
    minus_two = xp.asarray(-2.0, dtype=data.dtype, device=data.device)
    labels_old = None
    strict = False
    scale2 = data.scale ** 2
    for i in range(max_iter):
        labels, sums, counts, inertia = lloyd_pass(data, centers, need_inertia=bool(verbose))
        if verbose:
            print(f"Iteration {i}, inertia {float(inertia) * scale2}.")
        updated = new_centers(sums, counts, centers, xp)
        shift = xp.sum((updated - centers) ** 2)
        same = None if labels_old is None else xp.all(labels == labels_old)
        code = shift if same is None else xp.where(same, minus_one, shift)
        code = float(xp.where(xp.any(counts == 0), minus_two, code))  # the one host sync
        if code == -2.0:  # rare: empty clusters, relocate then re-test
            sums, counts = relocate_empty_clusters(data, labels, centers, sums, counts)
            updated = new_centers(sums, counts, centers, xp)
            shift = xp.sum((updated - centers) ** 2)
            code = float(shift if same is None else xp.where(same, minus_one, shift))
        centers = updated
        if code == -1.0:
            strict = True
            if verbose:
                print(f"Converged at iteration {i}: strict convergence.")
            break
        if code <= tol:
            if verbose:
                print(f"Converged at iteration {i}: center shift {code * scale2} within "
                      f"tolerance {tol * scale2}.")
            break
        labels_old = labels
    if strict:
        inertia = inertia_for_labels(data, centers, labels)
    else:
        labels, inertia = labels_inertia(data, centers)
    return labels, inertia, centers, i + 1


def same_clustering(labels1: Any, labels2: Any, n_clusters: int, data: ChunkedData) -> bool:
    """Whether every cluster of ``labels1`` lies inside one cluster of ``labels2``.

    scikit-learn's ``_is_same_clustering``, by a (k, k) contingency table built chunk by
    chunk.  One host sync.
    """
    xp = data.xp
    table = None
    for s, e in data.ranges():
        a = _ops.onehot(labels1[s:e], n_clusters, data.dtype, xp)
        b = _ops.onehot(labels2[s:e], n_clusters, data.dtype, xp)
        table = accumulate(table, xp.matmul(xp.matrix_transpose(a), b))
    per_row = xp.sum(xp.astype(table > 0, xp.int32), axis=1)
    return bool(xp.all(per_row <= 1))

