"""Clustering metrics, chunked and written against the Array API standard.

Every function takes arrays of any namespace the package supports (NumPy, torch on CPU or
GPU, CuPy, array-api-strict, ...) or array-likes, works on the input's device and returns
Python floats for scores (arrays in the input's namespace and device for per-sample values).

- :func:`silhouette_score` / :func:`silhouette_samples` never build the n x n distance
  matrix: they work on (block x block) distance blocks and keep (block x k) per-cluster sums.
  They also take sparse X (scipy.sparse, torch sparse, cupyx.scipy.sparse), as
  scikit-learn's do: never densified whole nor centred (see :class:`_SparseBlocks`).
  :func:`calinski_harabasz_score`, :func:`davies_bouldin_score` and :func:`inertia` refuse
  sparse X with a ``TypeError``, as scikit-learn's two scores do.
- :func:`calinski_harabasz_score`, :func:`davies_bouldin_score` and :func:`inertia` read X
  twice, chunk by chunk, and keep only (k x d) sums.
- :func:`adjusted_rand_score` builds its contingency table from one-hot blocks.

The results equal scikit-learn's (``sklearn.metrics``) within floating-point tolerance;
the error messages follow scikit-learn's.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._compat import (
    array_namespace,
    backend_name,
    device_of,
    host_label_codes,
    index_dtype,
    is_array,
    to_device,
    to_numpy,
)
from ._data import ChunkedData, accumulate
from ._kernels._reference import onehot
from ._metric import get_metric
from ._sparse import is_sparse
from ._validation import (
    InvalidParameterError,
    as_array,
    as_namespace,
    check_2d,
    check_dtype,
    check_random_state,
    check_sample_weight,
)

__all__ = [
    "adjusted_rand_score",
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "inertia",
    "silhouette_samples",
    "silhouette_score",
]

#: Rows per block in the silhouette (a block of distances is rows x rows).
SILHOUETTE_ROWS = 2048

#: Metric names accepted by the silhouette and their canonical name (scikit-learn's aliases).
METRICS = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "sqeuclidean": "sqeuclidean",
    "cosine": "cosine",
    "manhattan": "manhattan",
    "cityblock": "manhattan",
    "l1": "manhattan",
}


# -- checks ------------------------------------------------------------------------------
def _check_metric(metric: Any, owner: str) -> str:
    if not isinstance(metric, str) or metric not in METRICS:
        raise InvalidParameterError(
            f"The 'metric' parameter of {owner} must be a str among {{'euclidean', "
            f"'sqeuclidean', 'cosine', 'manhattan'}} (or the aliases 'l2', 'l1', "
            f"'cityblock'). Got {metric!r} instead.")
    return METRICS[metric]


def _check_optional_int(value: Any, name: str, owner: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be an int in the range [1, inf) or "
            f"None. Got {value!r} instead.")
    return int(value)


def _check_X(X: Any, owner: str) -> tuple[Any, Any, Any, int, int, Any]:
    """X as an array of its namespace: (X, xp, device, n, d, compute dtype)."""
    X, xp, dev = as_array(X, "X")
    n, d = check_2d(X, "X", owner)
    _, compute = check_dtype(X, xp, dev, "X")
    return X, xp, dev, n, d, compute


def _labels_in(labels: Any, name: str, xp: Any, device: Any, n: int | None) -> tuple[Any, int]:
    """Labels of any values (ints, strings, ...) as int64 codes 0..m-1 on ``device``, and m.

    Integer arrays of ``xp`` stay in it (moved to ``device`` if on another one); anything
    else is encoded on the host.
    """
    if is_array(labels) and backend_name(array_namespace(labels)) == backend_name(xp) \
            and xp.isdtype(labels.dtype, "integral"):
        lab = to_device(labels, device)
    else:
        lab = xp.asarray(host_label_codes(labels), device=device)
    if lab.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one label per sample; got shape "
                         f"{tuple(lab.shape)}.")
    if n is not None and int(lab.shape[0]) != n:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: [{n}, "
            f"{int(lab.shape[0])}]: {name} must be 1-D with one label per sample, "
            f"expected shape ({n},), got {tuple(lab.shape)}.")
    return _compact(lab, xp)


def _compact(lab: Any, xp: Any) -> tuple[Any, int]:
    values, inverse = xp.unique_inverse(lab)
    return xp.astype(inverse, index_dtype(xp)), int(values.shape[0])


def _check_number_of_labels(k: int, n: int) -> None:
    if not 2 <= k <= n - 1:
        raise ValueError(
            f"Number of labels is {k}. Valid values are 2 to n_samples - 1 (inclusive).")


def _scalar(total: Any, n: int) -> float:
    return float(total) / n  # host sync


# -- adjusted Rand index -------------------------------------------------------------------
def _comb2(v: Any) -> Any:
    return v * (v - 1.0) / 2.0


def adjusted_rand_score(labels_true: Any, labels_pred: Any) -> float:
    """Adjusted Rand index of two labelings (1.0: identical up to renaming; ~0: chance).

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_samples,)
        Labels of any values (integers, strings) and any namespace.

    Returns
    -------
    float

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


# -- silhouette ------------------------------------------------------------------------------
class _Blocks:
    """Rows of X in the frame of one metric (scaled; centred where the metric allows it; unit
    rows for cosine), and their distance blocks from the metric's kernel set (the seam every
    fit uses: ``_kernels.select``): squared Euclidean (its root for 'euclidean'), half the
    squared distance of unit rows (1 - cos) or L1.  Silhouettes are scale invariant, so the
    distances stay in working units."""

    def __init__(self, X: Any, xp: Any, compute: Any, metric: str, rows: int | None) -> None:
        from ._kernels import select

        self.metric = metric
        self.xp = xp
        fit_metric = "euclidean" if metric == "sqeuclidean" else metric
        self.kernels = select(xp, device_of(X), compute, metric=get_metric(fit_metric).kernel,
                              n_elements=int(X.shape[0]) * int(X.shape[1]))
        self.data = ChunkedData(X, xp=xp, dtype=compute, n_clusters=1,
                                chunk_size=rows or SILHOUETTE_ROWS, kernels=self.kernels,
                                metric=fit_metric)
        self.data.prepare("X")

    def outer(self):
        """The row blocks whose silhouettes are computed (rows of the distance blocks)."""
        return self.chunks()

    def inner(self):
        """The row blocks each outer block is compared with (columns of the blocks)."""
        return self.chunks()

    def chunks(self):
        """``(start, stop, rows)`` in working coordinates."""
        for s, e, c, _ in self.data.chunks():
            yield s, e, c

    def distances(self, s: int, e: int, A: Any, s2: int, e2: int, B: Any) -> Any:
        """The (e - s, e2 - s2) block of distances between rows s:e and s2:e2."""
        xp = self.xp
        rows = ChunkedData(A, xp=xp, dtype=self.data.dtype, n_clusters=e2 - s2,
                           chunk_size=e - s, kernels=self.kernels)  # already working rows
        D = self.kernels.sq_distances(rows, B)
        if self.metric == "euclidean":
            D = xp.sqrt(D)
        return _zero_diagonal(D, s, e, s2, e2, xp)


def _zero_diagonal(D: Any, s: int, e: int, s2: int, e2: int, xp: Any) -> Any:
    """The (e - s, e2 - s2) block ``D`` with a point's distance to itself set to 0."""
    if s2 < e and s < e2:  # the block holds part of the diagonal
        dev = device_of(D)
        r = xp.arange(s, e, dtype=index_dtype(xp), device=dev)
        c = xp.arange(s2, e2, dtype=index_dtype(xp), device=dev)
        D = xp.where(r[:, None] == c[None, :], xp.zeros_like(D), D)
    return D


class _SparseBlocks:
    """Distance blocks of a sparse X (a checked :class:`~kmeans_xp._sparse.SparseData`),
    as scikit-learn's pairwise distances compute them on sparse data:

    - euclidean / sqeuclidean: ``||a||^2 - 2 a.b + ||b||^2`` (never centred), cosine:
      ``1 - a.b / (||a|| ||b||)`` (rows of zeros at distance 1 from any row), from the
      sparse-sparse product of two row blocks (views of X's stored values), made dense
      (rows x rows);
    - manhattan: ``||a||_1 + sum over b's stored values of (|b_j - a_j| - |a_j|)``: the
      outer rows made dense and transposed (at most ``2 * budget`` elements), gathered at
      an inner block's columns (stored values x outer rows, at most ``4 * budget``) and
      summed per row by a product with the block's row indicator.

    Arithmetic runs in the accumulator dtype (float64 where the device has it, as
    scikit-learn computes float32 Euclidean distances); the silhouettes are returned in X's
    compute dtype.  Row norms are computed once.  X is never densified whole, nor a block
    larger than those above.
    """

    def __init__(self, data: Any, metric: str, rows: int | None) -> None:
        self.metric = metric
        self.data = data
        self.xp = xp = data.xp
        data.rows = min(rows or SILHOUETTE_ROWS, max(data.n, 1))
        self.outer_rows = data.rows
        if metric == "manhattan":
            self.outer_rows = max(1, min(data.rows, (2 * data.budget) // max(data.d, 1)))
            data.nnz_budget = max(1, (4 * data.budget) // self.outer_rows)
        data._bounds = {}
        sq, l1 = [], []
        for _, _, B, _ in data.chunks():
            if metric == "manhattan":
                l1.append(B.row_sums(xp.abs(B.data)))
            else:
                sq.append(B.row_sums(B.data * B.data))
        if metric == "manhattan":
            self.l1 = _concat(l1, xp)
        else:
            self.sq = _concat(sq, xp)
            if metric == "cosine":
                norm = xp.sqrt(self.sq)
                self.inv_norm = xp.where(norm > 0, 1.0 / xp.where(norm > 0, norm,
                                                                 xp.ones_like(norm)),
                                         xp.zeros_like(norm))

    def outer(self):
        """``(start, stop, A)``: the row blocks whose silhouettes are computed: views of X
        (manhattan: the rows made dense, as the contiguous (d, rows) transpose)."""
        data = self.data
        if self.metric != "manhattan":
            yield from self.inner()
            return
        for s in range(0, data.n, self.outer_rows):
            e = min(s + self.outer_rows, data.n)
            yield s, e, data.dense_rows(np.arange(s, e, dtype=np.int64), transposed=True)

    def inner(self):
        for s, e, B, _ in self.data.chunks():
            yield s, e, B

    def distances(self, s: int, e: int, A: Any, s2: int, e2: int, B: Any) -> Any:
        """The (e - s, e2 - s2) block of distances between rows s:e and s2:e2."""
        xp, metric = self.xp, self.metric
        if metric == "manhattan":
            cols = xp.astype(B.indices, xp.int64)
            G = xp.take(A, cols, axis=0)  # (stored values, outer rows): a_j at b's columns
            V = xp.abs(B.data[:, None] - G) - xp.abs(G)
            nnz = B.nnz
            ind = _sparse_block(B, xp.astype(xp.arange(nnz, device=B.data.device),
                                             B.indptr.dtype), xp.ones_like(B.data),
                                (B.shape[0], nnz))
            D = xp.matrix_transpose(ind.matmul(B.ops.contiguous(V)) + self.l1[None, s:e])
        else:
            D = B.ops.gram(A, B)  # (outer, inner): a.b, a fresh block (updated in place)
            if metric == "cosine":
                D *= -self.inv_norm[s:e, None]
                D *= self.inv_norm[None, s2:e2]
                D += 1.0
                D = xp.clip(D, min=0.0, max=2.0)
            else:
                D *= -2.0
                D += self.sq[s:e, None]
                D += self.sq[None, s2:e2]
                D = xp.clip(D, min=0.0)
                if metric == "euclidean":
                    D = xp.sqrt(D)
        return _zero_diagonal(D, s, e, s2, e2, xp)


def _sparse_block(B: Any, indices: Any, data: Any, shape: tuple) -> Any:
    """A :class:`~kmeans_xp._sparse.SparseBlock` with ``B``'s row pointers."""
    from ._sparse import SparseBlock

    return SparseBlock(B.indptr, indices, data, shape, B.ops)


def _concat(parts: list, xp: Any) -> Any:
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def _sparse_X(X: Any, owner: str) -> tuple[Any, Any, Any, int, Any]:
    """A sparse X checked (shape, dtype) as the estimators check it: ``(data, xp, device,
    n, compute dtype)``, ``data`` a SparseData in the accumulator dtype."""
    from ._compat import is_float64_supported
    from ._sparse import SparseData, sparse_input

    csr, _, compute = sparse_input(X, "X", owner)
    xp, dev = csr.xp, csr.device
    acc = xp.float64 if is_float64_supported(xp, dev) else compute
    data = SparseData(csr, xp=xp, dtype=acc, n_clusters=1)
    return data, xp, dev, csr.shape[0], compute


def _sparse_silhouette(data: Any, lab: Any, k: int, metric: str, rows: int | None,
                       compute: Any) -> Any:
    _check_number_of_labels(k, data.n)
    data.scale_only("X")
    blocks = _SparseBlocks(data, metric, rows)
    return data.xp.astype(_silhouette_blocks(blocks, [(lab, k)])[0], compute)


def _silhouette_blocks(blocks: _Blocks | _SparseBlocks,
                       labelings: Sequence[tuple[Any, int]]) -> list[Any]:
    """Silhouette of every sample (n,) for each labeling ``(codes, k)``, all from one pass.

    The distance blocks do not depend on the labels: they are computed once and multiplied
    by each labeling's one-hot matrix, so k sweeps (:func:`kmeans_xp.select_k`) pay for the
    distances once.
    """
    data, xp = blocks.data, blocks.xp
    dtype, dev = data.dtype, data.device
    counts = []
    for lab, k in labelings:
        c: Any = None
        for s, e in data.ranges():
            c = accumulate(c, xp.sum(onehot(lab[s:e], k, dtype, xp), axis=0))
        counts.append(c)
    out: list[list[Any]] = [[] for _ in labelings]
    for s, e, A in blocks.outer():
        sums: list[Any] = [None] * len(labelings)  # (rows, k): distances to each cluster
        for s2, e2, B in blocks.inner():
            D = blocks.distances(s, e, A, s2, e2, B)
            for j, (lab, k) in enumerate(labelings):
                sums[j] = accumulate(sums[j], xp.matmul(D, onehot(lab[s2:e2], k, dtype, xp)))
        for j, (lab, k) in enumerate(labelings):
            own = lab[s:e]
            ks = xp.arange(k, dtype=own.dtype, device=dev)
            is_own = own[:, None] == ks[None, :]
            own_count = xp.take(counts[j], own)
            a = xp.sum(xp.where(is_own, sums[j], xp.zeros_like(sums[j])), axis=1) / xp.clip(
                own_count - 1.0, min=1.0)
            means = sums[j] / counts[j][None, :]
            b = xp.min(xp.where(is_own, xp.full_like(means, float("inf")), means), axis=1)
            denom = xp.maximum(a, b)
            ok = (own_count > 1) & (denom > 0)
            out[j].append(xp.where(ok, (b - a) / xp.where(ok, denom, xp.ones_like(denom)),
                                   xp.zeros_like(a)))
    return [parts[0] if len(parts) == 1 else xp.concat(parts) for parts in out]


def silhouette_samples(X: Any, labels: Any, *, metric: str = "euclidean",
                       chunk_size: int | None = None) -> Any:
    """Silhouette coefficient of every sample, in O(chunk^2) memory.

    For sample i with a(i) its mean distance to the other members of its cluster and b(i)
    its smallest mean distance to the members of another cluster,
    s(i) = (b - a) / max(a, b); a sample alone in its cluster gets 0.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any namespace and device (or an array-like), or sparse: scipy.sparse (any
        format), torch sparse, cupyx.scipy.sparse (the result is then an array of the
        sparse arrays' namespace: NumPy for scipy).
    labels : array-like of shape (n_samples,)
        Cluster labels of any values; 2 <= number of labels <= n_samples - 1.
    metric : {'euclidean', 'sqeuclidean', 'cosine', 'manhattan'}, default='euclidean'
        The distance between samples ('l2', 'l1' and 'cityblock' are accepted aliases).
    chunk_size : int, optional
        Rows per block (a block of distances is chunk_size x chunk_size; default 2048).
        For sparse X the rows made dense at a time are fewer for wide X (about 4 * 2**20
        elements on the CPU).

    Returns
    -------
    array of shape (n_samples,)
        In X's namespace and device, in X's floating dtype (the default float for integers).

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp.metrics import silhouette_samples
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> np.round(silhouette_samples(X, [0, 0, 1, 1]), 3).tolist()
    [0.905, 0.895, 0.895, 0.905]
    """
    owner = "silhouette_samples"
    metric = _check_metric(metric, owner)
    chunk_size = _check_optional_int(chunk_size, "chunk_size", owner)
    if is_sparse(X):
        data, xp, dev, n, compute = _sparse_X(X, owner)
        lab, k = _labels_in(labels, "labels", xp, dev, n)
        return _sparse_silhouette(data, lab, k, metric, chunk_size, compute)
    X, xp, dev, n, _, compute = _check_X(X, owner)
    lab, k = _labels_in(labels, "labels", xp, dev, n)
    _check_number_of_labels(k, n)
    return _silhouette_blocks(_Blocks(X, xp, compute, metric, chunk_size), [(lab, k)])[0]


def _sample_rows(X: Any, lab: Any, sample_size: int, random_state: Any, xp: Any,
                 dev: Any) -> tuple[Any, Any, int]:
    """scikit-learn's draw: ``check_random_state(rs).permutation(n)[:sample_size]``
    (for sparse X, a SparseData: its ``subset``)."""
    n = int(X.shape[0]) if not hasattr(X, "subset") else X.n
    host = np.asarray(check_random_state(random_state).permutation(n)[:sample_size],
                      dtype=np.int64)
    idx = xp.asarray(host, device=dev)
    sub, k = _compact(xp.take(lab, idx), xp)
    if hasattr(X, "subset"):
        return X.subset(host), sub, k
    return xp.take(X, idx, axis=0), sub, k


def silhouette_score(X: Any, labels: Any, *, metric: str = "euclidean",
                     sample_size: int | None = None, random_state: Any = None,
                     chunk_size: int | None = None) -> float:
    """Mean silhouette coefficient of all samples (or of a random sample of them).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any namespace and device (or an array-like), or sparse (scipy.sparse, torch
        sparse, cupyx.scipy.sparse; see :func:`silhouette_samples`).
    labels : array-like of shape (n_samples,)
        Cluster labels of any values; 2 <= number of labels <= n_samples - 1 (among the
        drawn rows when ``sample_size`` is given).
    metric : {'euclidean', 'sqeuclidean', 'cosine', 'manhattan'}, default='euclidean'
        The distance between samples ('l2', 'l1' and 'cityblock' are accepted aliases).
    sample_size : int, optional
        Score a random subset of this many rows, drawn on the host as scikit-learn does
        (``check_random_state(random_state).permutation(n_samples)[:sample_size]``): the
        same int ``random_state`` scores the same rows as scikit-learn, on every backend.
    random_state : int, numpy RandomState or Generator, or None
        Seeds the row draw (only used with ``sample_size``).
    chunk_size : int, optional
        Rows per block (a block of distances is chunk_size x chunk_size; default 2048).

    Returns
    -------
    float
        Between -1 (wrong clusters) and 1 (dense, well separated clusters).

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp.metrics import silhouette_score
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [8.0, 8.0], [8.0, 9.0]])
    >>> round(silhouette_score(X, [0, 0, 1, 1]), 4)
    0.9116
    """
    owner = "silhouette_score"
    metric = _check_metric(metric, owner)
    sample_size = _check_optional_int(sample_size, "sample_size", owner)
    chunk_size = _check_optional_int(chunk_size, "chunk_size", owner)
    if is_sparse(X):
        data, xp, dev, n, compute = _sparse_X(X, owner)
        lab, k = _labels_in(labels, "labels", xp, dev, n)
        if sample_size is not None:
            data, lab, k = _sample_rows(data, lab, sample_size, random_state, xp, dev)
        s = _sparse_silhouette(data, lab, k, metric, chunk_size, compute)
        return _scalar(xp.sum(xp.astype(s, data.accumulator_dtype())), data.n)
    X, xp, dev, n, _, compute = _check_X(X, owner)
    lab, k = _labels_in(labels, "labels", xp, dev, n)
    if sample_size is not None:
        X, lab, k = _sample_rows(X, lab, sample_size, random_state, xp, dev)
        n = int(X.shape[0])
    _check_number_of_labels(k, n)
    blocks = _Blocks(X, xp, compute, metric, chunk_size)
    s = _silhouette_blocks(blocks, [(lab, k)])[0]
    return _scalar(xp.sum(xp.astype(s, blocks.data.accumulator_dtype())), n)


# -- scores from cluster means -----------------------------------------------------------------
def _cluster_means(data: ChunkedData, lab: Any, k: int) -> tuple[Any, Any, Any]:
    """Per-cluster (weighted) sums (k, d) and weights (k,) in the accumulator dtype, and the
    means (k, d) in the compute dtype; all in working coordinates.  One read of X."""
    xp = data.xp
    acc = data.accumulator_dtype()
    sums: Any = None
    counts: Any = None
    for s, e, c, w in data.chunks():
        oh = onehot(lab[s:e], k, data.dtype, xp)
        if w is not None:
            oh = oh * w[:, None]
        sums = accumulate(sums, xp.astype(xp.matmul(xp.matrix_transpose(oh), c), acc))
        counts = accumulate(counts, xp.astype(xp.sum(oh, axis=0), acc))
    safe = xp.where(counts > 0, counts, xp.ones_like(counts))
    means = xp.astype(sums / safe[:, None], data.dtype)
    return sums, counts, means


def _sq_dist_to_assigned(c: Any, centers: Any, lab: Any, xp: Any) -> Any:
    diff = c - xp.take(centers, lab, axis=0)
    return xp.sum(diff * diff, axis=1)


def _score_data(X: Any, labels: Any, owner: str) -> tuple[ChunkedData, Any, int, int]:
    X, xp, dev, n, _, compute = _check_X(X, owner)
    lab, k = _labels_in(labels, "labels", xp, dev, n)
    _check_number_of_labels(k, n)
    data = ChunkedData(X, xp=xp, dtype=compute, n_clusters=k)
    data.prepare("X")
    return data, lab, k, n


def calinski_harabasz_score(X: Any, labels: Any) -> float:
    """Calinski-Harabasz index (variance ratio criterion): higher is better.

    The ratio of the between-cluster dispersion to the within-cluster dispersion, each
    divided by its degrees of freedom:
    ``[sum_k n_k ||m_k - m||^2 / (K - 1)] / [sum_i ||x_i - m_{l_i}||^2 / (n - K)]``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any namespace and device (or an array-like).
    labels : array-like of shape (n_samples,)
        Cluster labels of any values; 2 <= number of labels <= n_samples - 1.

    Returns
    -------
    float
        1.0 when every cluster is a single point repeated (no within-cluster dispersion).

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp.metrics import calinski_harabasz_score
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [8.0, 8.0], [8.0, 9.0]])
    >>> calinski_harabasz_score(X, [0, 0, 1, 1])
    256.0
    """
    data, lab, k, _ = _score_data(X, labels, "calinski_harabasz_score")
    return _calinski_harabasz(data, lab, k)


def _calinski_harabasz(data: ChunkedData, lab: Any, k: int) -> float:
    """The index of labels ``lab`` (codes 0..k-1) on prepared ``data``: two reads of X."""
    xp, n = data.xp, data.n
    acc = data.accumulator_dtype()
    sums, counts, means = _cluster_means(data, lab, k)
    mean = xp.sum(sums, axis=0) / float(n)
    diff = sums / counts[:, None] - mean[None, :]
    extra = xp.sum(counts * xp.sum(diff * diff, axis=1))
    intra = None
    for s, e, c, _ in data.chunks():
        intra = accumulate(intra, xp.astype(xp.sum(_sq_dist_to_assigned(c, means, lab[s:e], xp)),
                                            acc))
    extra_f, intra_f = (float(v) for v in np.asarray(_host(xp.stack([extra, intra]))))
    if intra_f == 0.0:
        return 1.0
    return float(extra_f * (n - k) / (intra_f * (k - 1.0)))


def _host(a: Any) -> np.ndarray:
    return to_numpy(a)  # host sync


def _integer_labels(labels: Any, xp: Any, dev: Any) -> Any:
    """Integer labels (row indices of given centres) in ``xp`` on ``dev``, or a TypeError."""
    if is_array(labels) and backend_name(array_namespace(labels)) == backend_name(xp):
        lab = to_device(labels, dev)
        ok = xp.isdtype(lab.dtype, "integral")
    else:
        host = np.asarray(to_numpy(labels) if is_array(labels) else labels)
        ok = host.dtype.kind in "iu"
        lab = xp.asarray(host.astype(np.int64), device=dev) if ok else host
    if not ok:
        raise TypeError("labels must be integers (rows of centers) when centers is given; "
                        f"got dtype {lab.dtype}.")
    return lab


def _pairwise_direct(C: Any, xp: Any) -> Any:
    """Euclidean distances (k, k) between the rows of C by direct differences (exact 0 for
    equal rows), in row blocks of at most 2**22 elements."""
    k, d = int(C.shape[0]), int(C.shape[1])
    rows = max(1, (1 << 22) // max(1, k * d))
    parts = []
    for s in range(0, k, rows):
        diff = C[s:min(s + rows, k), None, :] - C[None, :, :]
        parts.append(xp.sqrt(xp.sum(diff * diff, axis=2)))
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def davies_bouldin_score(X: Any, labels: Any) -> float:
    """Davies-Bouldin index: lower is better (0 is the lowest).

    The mean over clusters i of ``max_{j != i} (s_i + s_j) / ||c_i - c_j||``, with
    ``c_i`` the centroid of cluster i and ``s_i`` the mean Euclidean distance of its
    members to it.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any namespace and device (or an array-like).
    labels : array-like of shape (n_samples,)
        Cluster labels of any values; 2 <= number of labels <= n_samples - 1.

    Returns
    -------
    float
        0.0 when all clusters are single repeated points or all centroids coincide (as
        scikit-learn).

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp.metrics import davies_bouldin_score
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [8.0, 8.0], [8.0, 9.0]])
    >>> round(davies_bouldin_score(X, [0, 0, 1, 1]), 4)
    0.0884
    """
    data, lab, k, _ = _score_data(X, labels, "davies_bouldin_score")
    return _davies_bouldin(data, lab, k)


def _davies_bouldin(data: ChunkedData, lab: Any, k: int) -> float:
    """The index of labels ``lab`` (codes 0..k-1) on prepared ``data``: two reads of X."""
    xp = data.xp
    acc = data.accumulator_dtype()
    _, counts, means = _cluster_means(data, lab, k)
    within = None
    for s, e, c, _ in data.chunks():
        dist = xp.sqrt(_sq_dist_to_assigned(c, means, lab[s:e], xp))
        oh = onehot(lab[s:e], k, data.dtype, xp)
        within = accumulate(within, xp.astype(xp.matmul(dist[None, :], oh)[0, :], acc))
    intra = within / counts * data.scale  # data units: the closeness test below is absolute
    centroid = xp.astype(_pairwise_direct(means, xp), acc) * data.scale
    flags = _host(xp.stack([xp.all(xp.abs(intra) <= 1e-8), xp.all(xp.abs(centroid) <= 1e-8)]))
    if bool(flags[0]) or bool(flags[1]):  # scikit-learn's np.allclose(..., 0)
        return 0.0
    centroid = xp.where(centroid == 0, xp.full_like(centroid, float("inf")), centroid)
    scores = xp.max((intra[:, None] + intra[None, :]) / centroid, axis=1)
    return float(xp.mean(scores))


def inertia(X: Any, labels: Any, centers: Any = None, sample_weight: Any = None) -> float:
    """Within-cluster sum of squares: ``sum_i w_i ||x_i - c_{labels_i}||^2``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any namespace and device (or an array-like).
    labels : array-like of shape (n_samples,)
        With ``centers``: integers in [0, n_centers), the row of ``centers`` of each
        sample.  Without: labels of any values.
    centers : array of shape (n_centers, n_features), optional
        The centres (any namespace; moved to X's device).  Default: the (weighted) mean of
        each cluster, which gives the smallest inertia for these labels.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights (default 1).

    Returns
    -------
    float
        For a fitted ``KMeans`` ``km``, ``inertia(X, km.labels_, km.cluster_centers_)``
        equals ``km.inertia_`` within float tolerance.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp.metrics import inertia
    >>> X = np.array([[0.0, 0.0], [0.0, 2.0], [8.0, 8.0], [8.0, 9.0]])
    >>> inertia(X, [0, 0, 1, 1])
    2.5
    >>> inertia(X, [0, 0, 1, 1], centers=np.array([[0.0, 0.0], [8.0, 8.0]]))
    5.0
    """
    owner = "inertia"
    X, xp, dev, n, d, compute = _check_X(X, owner)
    w = check_sample_weight(sample_weight, n, xp, dev, compute)
    if centers is None:
        lab, k = _labels_in(labels, "labels", xp, dev, n)
    else:
        C = as_namespace(centers, "centers", xp, dev, compute)
        if C.ndim != 2 or int(C.shape[1]) != d:
            raise ValueError(f"centers must have shape (n_centers, {d}) to match X's "
                             f"{d} features; got shape {tuple(C.shape)}.")
        k = int(C.shape[0])
        lab = _integer_labels(labels, xp, dev)
        lab = xp.astype(lab, index_dtype(xp))
        if lab.ndim != 1 or int(lab.shape[0]) != n:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: [{n}, "
                f"{int(lab.shape[0]) if lab.ndim else 0}]: labels must be 1-D with one label "
                f"per sample, expected shape ({n},), got {tuple(lab.shape)}.")
        lo_hi = _host(xp.stack([xp.min(lab), xp.max(lab)]))
        if int(lo_hi[0]) < 0 or int(lo_hi[1]) >= k:
            raise ValueError(f"labels must lie in [0, {k}) to index the {k} rows of centers; "
                             f"got values from {int(lo_hi[0])} to {int(lo_hi[1])}.")
    data = ChunkedData(X, xp=xp, dtype=compute, weights=w, n_clusters=k)
    data.prepare("X")
    if centers is None:
        _, _, C = _cluster_means(data, lab, k)
    else:
        C = data.to_working_coords(C)
    acc = data.accumulator_dtype()
    total: Any = None
    for s, e, c, wc in data.chunks():
        dist = _sq_dist_to_assigned(c, C, lab[s:e], xp)
        if wc is not None:
            dist = dist * wc
        total = accumulate(total, xp.astype(xp.sum(dist), acc))
    return float(total) * data.distance_factor()[0]
