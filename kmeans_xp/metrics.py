"""Clustering metrics, chunked and written against the Array API standard.

``silhouette_score`` never builds the n x n distance matrix: it works on blocks of
(rows x rows) and keeps (rows x k) per-cluster sums.  ``adjusted_rand_score`` builds its
contingency table from one-hot blocks.  Results are Python floats.
"""

from __future__ import annotations

from typing import Any

from ._kernels._reference import onehot
from ._data import ChunkedData, accumulate
from ._compat import array_namespace, backend_name, host_label_codes, is_array
from ._validation import InvalidParameterError, as_array, check_2d, check_dtype

__all__ = ["adjusted_rand_score", "silhouette_score"]

#: Rows per block in ``silhouette_score`` (a block of distances is rows x rows).
SILHOUETTE_ROWS = 2048


def _labels_in(labels: Any, name: str, xp: Any, device: Any, n: int | None) -> tuple[Any, int]:
    """Labels of any values (ints, strings, ...) as integers 0..m-1 on ``device``, and m.

    Integer arrays of ``xp`` stay on the device; anything else is encoded on the host.
    """
    if is_array(labels) and backend_name(array_namespace(labels)) == backend_name(xp) \
            and xp.isdtype(labels.dtype, "integral"):
        lab = labels
    else:
        lab = xp.asarray(host_label_codes(labels), device=device)
    if lab.ndim != 1 or (n is not None and int(lab.shape[0]) != n):
        raise ValueError(f"{name} must be 1-D with one label per sample; got shape "
                         f"{tuple(lab.shape)}" + (f", expected ({n},)." if n else "."))
    values, inverse = xp.unique_inverse(lab)
    return xp.astype(inverse, xp.int64), int(values.shape[0])


def _comb2(v: Any) -> Any:
    return v * (v - 1.0) / 2.0


def adjusted_rand_score(labels_true: Any, labels_pred: Any) -> float:
    """Adjusted Rand index of two labelings (1.0: identical up to renaming; ~0: chance).

    Examples
    --------
    >>> from kmeans_xp.metrics import adjusted_rand_score
    >>> adjusted_rand_score([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    a, xp, dev = as_array(labels_pred, "labels_pred")
    t, kt = _labels_in(labels_true, "labels_true", xp, dev, None)
    p, kp = _labels_in(a, "labels_pred", xp, dev, int(t.shape[0]))
    n = int(t.shape[0])
    if n < 2 or (kt == kp == 1) or (kt == kp == n):
        return 1.0
    f64 = xp.float64
    table = None
    rows = max(1, (1 << 20) // max(kt, kp))
    for s in range(0, n, rows):
        e = min(s + rows, n)
        block = xp.matmul(xp.matrix_transpose(onehot(t[s:e], kt, f64, xp)),
                          onehot(p[s:e], kp, f64, xp))
        table = accumulate(table, block)
    sum_comb = xp.sum(_comb2(table))
    sum_a = xp.sum(_comb2(xp.sum(table, axis=1)))
    sum_b = xp.sum(_comb2(xp.sum(table, axis=0)))
    expected = sum_a * sum_b / _comb2(float(n))
    maximum = (sum_a + sum_b) / 2.0
    return float((sum_comb - expected) / (maximum - expected))


def silhouette_score(X: Any, labels: Any, *, chunk_size: int | None = None) -> float:
    """Mean silhouette coefficient (Euclidean) of all samples, in O(chunk^2) memory.

    For sample i with a(i) its mean distance to the other members of its cluster and b(i)
    its smallest mean distance to another cluster, s(i) = (b - a) / max(a, b), and 0 for a
    sample alone in its cluster.  Needs 2 <= number of clusters <= n_samples - 1.
    """
    X, xp, dev = as_array(X, "X")
    n, d = check_2d(X, "X", "silhouette_score")
    _, compute = check_dtype(X, xp, dev, "X")
    lab, k = _labels_in(labels, "labels", xp, dev, n)
    if not 2 <= k <= n - 1:
        raise InvalidParameterError(
            f"Number of labels is {k}. Valid values are 2 to n_samples - 1 (inclusive).")
    # (rows x rows) distance blocks: 2048 rows is a 2**22-element block
    data = ChunkedData(X, xp=xp, dtype=compute, n_clusters=max(k, 1),
                       chunk_size=chunk_size or SILHOUETTE_ROWS)
    data.prepare("X")
    counts = None
    for s, e in data.ranges():
        counts = accumulate(counts, xp.sum(onehot(lab[s:e], k, compute, xp), axis=0))
    x_sq = xp.concat([xp.sum(Xt * Xt, axis=1) for _, _, Xt, _ in data.chunks()])
    total = xp.asarray(0.0, dtype=data.accumulator_dtype(), device=dev)
    ks = xp.arange(k, dtype=xp.int64, device=dev)
    for s, e, Xr, _ in data.chunks():
        sums = None  # (rows, k): sum of distances from each row to each cluster
        rows_idx = xp.arange(s, e, dtype=xp.int64, device=dev)
        for s2, e2, Xc, _ in data.chunks():
            D2 = x_sq[s:e, None] - 2.0 * xp.matmul(Xr, xp.matrix_transpose(Xc)) + x_sq[None, s2:e2]
            D = xp.sqrt(xp.clip(D2, min=0.0))
            if s2 < e and s < e2:  # the block holds some diagonal: a point is 0 from itself
                cols_idx = xp.arange(s2, e2, dtype=xp.int64, device=dev)
                D = xp.where(rows_idx[:, None] == cols_idx[None, :], xp.zeros_like(D), D)
            part = xp.matmul(D, onehot(lab[s2:e2], k, compute, xp))
            sums = accumulate(sums, part)
        own = lab[s:e]
        is_own = own[:, None] == ks[None, :]
        own_count = xp.take(counts, own)
        a = xp.sum(xp.where(is_own, sums, xp.zeros_like(sums)), axis=1) / xp.clip(
            own_count - 1.0, min=1.0)
        means = sums / counts[None, :]
        big = xp.full_like(means, float("inf"))
        b = xp.min(xp.where(is_own, big, means), axis=1)
        denom = xp.maximum(a, b)
        sil = xp.where((own_count > 1) & (denom > 0), (b - a) / xp.where(denom > 0, denom, 1.0),
                       xp.zeros_like(a))
        total = total + xp.astype(xp.sum(sil), data.accumulator_dtype())
    return float(total) / n
