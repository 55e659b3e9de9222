"""Lloyd's iteration, written once against the Array API standard.

Every pass over X goes through the fit's kernel set (``data.kernels``: a Lloyd pass, the
final assignment, distances to the assigned centres).  Per iteration there is exactly one
host sync: a Python ``float`` of a 0-d array that folds strict convergence, the centre
shift and the presence of empty clusters into one number.
"""

from __future__ import annotations

from typing import Any

from .._data import ChunkedData, accumulate, unit_rows
from .._kernels._reference import onehot


def new_centers(sums: Any, counts: Any, old: Any, xp: Any, *,
                none_empty: bool = False) -> Any:
    """Means of the clusters; a cluster with no weight keeps its old centre (never NaN).

    ``none_empty``: the caller discards the result when a cluster is empty, so the means
    are returned without selecting the old centres (one (k, d) temporary fewer: for wide
    sparse data that is 200 MB of the peak at k = 100, d = 2**18).
    """
    has = counts > 0
    safe = xp.where(has, counts, xp.ones_like(counts))
    means = sums / safe[:, None]
    return means if none_empty else xp.where(has[:, None], means, old)


#: rows of centres per block of :func:`squared_shift` (times d: elements of its temporary)
SHIFT_BLOCK_ELEMENTS = 1 << 20


def squared_shift(new: Any, old: Any, xp: Any) -> Any:
    """``||new - old||_F^2`` (0-d), by blocks of rows: no (k, d) temporary."""
    k, d = int(new.shape[0]), int(new.shape[1])
    rows = max(1, SHIFT_BLOCK_ELEMENTS // max(d, 1))
    if rows >= k:
        return xp.sum((new - old) ** 2)
    total = None
    for a in range(0, k, rows):
        diff = new[a:a + rows, ...] - old[a:a + rows, ...]
        total = accumulate(total, xp.sum(diff * diff))
    return total


def weighted_medians(data: ChunkedData, labels: Any, counts: Any, old: Any) -> Any:
    """Coordinate-wise weighted median of each cluster (k, d); an empty cluster keeps ``old``.

    The median of a cluster in feature f is the smallest value whose cumulative weight,
    in sorted order, reaches half the cluster's weight (the lower median for an even
    number of equal weights).  Features are taken in blocks of columns: each block is
    sorted by (label, value) with two stable sorts, and the medians are found with one
    ``searchsorted`` on the running weight.  Memory: an (n x block) array, block =
    budget // n columns (at least one).
    """
    xp = data.xp
    n, d = data.n, data.d
    acc = data.accumulator_dtype()
    w = (xp.ones((n,), dtype=acc, device=data.device) if data.weights is None
         else xp.astype(data.weights, acc))
    counts = xp.astype(counts, acc)
    before = xp.cumulative_sum(counts) - counts  # weight of the clusters ahead of each
    target = before + 0.5 * counts
    block = max(1, min(d, data.budget // max(1, n)))
    cols = []
    for f0 in range(0, d, block):
        f1 = min(d, f0 + block)
        V = xp.concat([Xt[:, f0:f1] for _, _, Xt, _ in data.chunks()])  # (n, f1 - f0)
        for j in range(f1 - f0):
            v = V[:, j]
            order = xp.argsort(v, stable=True)
            order = xp.take(order, xp.argsort(xp.take(labels, order), stable=True))
            cum = xp.cumulative_sum(xp.take(w, order))
            # the first position whose running weight reaches the cluster's half weight
            pos = xp.clip(xp.searchsorted(cum, target, side="left"), max=n - 1)
            cols.append(xp.take(xp.take(v, order), pos))
    med = xp.stack(cols, axis=1)
    return xp.where((counts > 0)[:, None], med, old)


def update_centers(data: ChunkedData, labels: Any, sums: Any, counts: Any, old: Any, *,
                   none_empty: bool = False) -> Any:
    """The centre update of the fit's metric: means (Euclidean), means scaled back to unit
    length (cosine: spherical k-means) or weighted medians (Manhattan: k-medians).
    ``none_empty``: see :func:`new_centers`."""
    xp = data.xp
    if data.metric == "manhattan":
        return weighted_medians(data, labels, counts, old)
    C = new_centers(sums, counts, old, xp, none_empty=none_empty)
    return unit_rows(C, xp) if data.metric == "cosine" else C


def relocate_empty_clusters(data: ChunkedData, labels: Any, centers: Any, sums: Any,
                            counts: Any) -> tuple[Any, Any]:
    """Give each empty cluster the point farthest from its centre (scikit-learn's rule).

    Works on the sums, before averaging: the point's weighted coordinates leave its
    cluster's sum and become the empty cluster's sum.  A rare path: it reads X once more
    and sorts n distances.  Returns the new sums and counts, and the labels: unchanged
    (as scikit-learn's), except for 'manhattan', whose medians are taken over labels, so
    the moved points carry their new cluster's label.
    """
    xp = data.xp
    k = int(centers.shape[0])
    dist = data.kernels.sq_dist_to_assigned(data, centers, labels)
    if data.weights is not None:  # a zero-weight point cannot fill a cluster
        dist = xp.where(data.weights > 0, dist, xp.full_like(dist, -1.0))
    if not float(xp.max(dist)) > 0.0:  # one host sync, on this rare path only
        # every (weighted) point sits on its centre: more clusters than distinct points;
        # relocating is pointless and would only shuffle duplicates (scikit-learn's rule)
        return sums, counts, labels
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
    if data.metric == "manhattan":
        rows = xp.arange(data.n, dtype=far.dtype, device=data.device)
        for j in range(n_empty):  # n_empty small passes of O(n), on a rare path
            labels = xp.where(rows == far[j], xp.astype(empty[j], labels.dtype), labels)
    return sums, counts, labels


def kmeans_single_lloyd(data: ChunkedData, centers: Any, *, max_iter: int, tol: float,
                        verbose: int = 0):
    """One run of Lloyd's algorithm from ``centers`` (working coordinates).

    Returns ``labels, inertia, centers, n_iter`` with the semantics of scikit-learn's
    ``_kmeans_single_lloyd``: stop on unchanged labels (strict convergence) or on a
    squared centre shift <= ``tol``; after a ``tol`` stop (or ``max_iter``) one more
    assignment so that the labels match the returned centres.  ``inertia`` is a 0-d
    array in working units.
    """
    xp, kern = data.xp, data.kernels
    minus_one = xp.asarray(-1.0, dtype=data.dtype, device=data.device)
    minus_two = xp.asarray(-2.0, dtype=data.dtype, device=data.device)
    labels_old = None
    strict = False
    scale2 = data.scale * data.scale
    factor = data.distance_factor()[0]
    for i in range(max_iter):
        labels, sums, counts, inertia = kern.lloyd_pass(data, centers,
                                                        need_inertia=bool(verbose))
        if verbose:
            print(f"Iteration {i}, inertia {float(inertia) * factor}.")
        # (an empty cluster makes the code -2: these centres are then made again)
        fused = kern.lloyd_update(data, labels, sums, counts, centers, labels_old)
        if fused is not None:  # the kernel set folded the lines below into one call
            updated, code = fused
            code = float(code)  # the one host sync
            same = None if labels_old is None or code != -2.0 else \
                kern.labels_equal(labels, labels_old)  # for the rare path below
        else:
            updated = update_centers(data, labels, sums, counts, centers, none_empty=True)
            shift = squared_shift(updated, centers, xp)
            same = None if labels_old is None else kern.labels_equal(labels, labels_old)
            code = shift if same is None else xp.where(same, minus_one, shift)
            code = float(xp.where(xp.any(counts == 0), minus_two, code))  # the one host sync
        if code == -2.0:  # rare: empty clusters, relocate then re-test
            sums, counts, labels = relocate_empty_clusters(data, labels, centers, sums, counts)
            updated = update_centers(data, labels, sums, counts, centers)
            shift = squared_shift(updated, centers, xp)
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
        inertia = kern.inertia_for_labels(data, centers, labels)
    else:
        labels, inertia = kern.labels_inertia(data, centers)
    return labels, inertia, centers, i + 1


def same_clustering(labels1: Any, labels2: Any, n_clusters: int, data: ChunkedData) -> bool:
    """Whether every cluster of ``labels1`` lies inside one cluster of ``labels2``.

    scikit-learn's ``_is_same_clustering``, by a (k, k) contingency table built chunk by
    chunk.  One host sync.
    """
    xp = data.xp
    table = None
    for s, e in data.ranges():
        a = onehot(labels1[s:e], n_clusters, data.dtype, xp)
        b = onehot(labels2[s:e], n_clusters, data.dtype, xp)
        table = accumulate(table, xp.matmul(xp.matrix_transpose(a), b))
    per_row = xp.sum(xp.astype(table > 0, xp.int32), axis=1)
    return bool(xp.all(per_row <= 1))

