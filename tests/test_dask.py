"""KMeans on Dask arrays, on a dask.distributed LocalCluster of 2 worker processes.

The cluster is started once for the module and closed at its end; its teardown checks that
no worker process is left.  The reference for every fit is the in-memory fit of the same
data from the same initial centres (and scikit-learn where it applies).
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

import dask

import kmeans_xp
from kmeans_xp import KMeans, MiniBatchKMeans, _dask, kmeans_plusplus
from kmeans_xp._validation import DataNamespaceError

#: bytes per worker: a worker process holds ~230 MiB before any data (Python, NumPy, Dask,
#: kmeans_xp), so the large data set (just over one limit, half on each worker) leaves it at
#: ~0.75 of its limit (with 600 MB it reached the spill threshold and CI saw a worker killed)
MEMORY_LIMIT = 1_000_000_000
#: worker memory thresholds raised from (0.6, 0.7, 0.8, 0.95): a worker holds about half of
#: the large data set (over half its limit) and must neither spill it to its disk nor pause
WORKER_MEMORY = {"distributed.worker.memory.target": 0.9,
                 "distributed.worker.memory.spill": 0.9,
                 "distributed.worker.memory.pause": 0.95,
                 "distributed.worker.memory.terminate": 0.98}


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with dask.config.set(WORKER_MEMORY):
        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                               memory_limit=MEMORY_LIMIT, dashboard_address=":0")
    cl = Client(cluster)
    pids = list(cl.run(os.getpid).values())
    try:
        # the workers run this checkout's code, not another installed copy
        files = set(cl.run(lambda: __import__("kmeans_xp").__file__).values())
        assert files == {kmeans_xp.__file__}
        yield cl
    finally:
        cl.close()
        cluster.close()
        deadline = time.monotonic() + 20
        while any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                  for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in pids if psutil.pid_exists(p)
                and psutil.Process(p).status() != "zombie"]
        assert not left, f"worker processes left running: {left}"


def blobs(n, d, k, *, seed=0, dtype=np.float64, spread=6.0, offset=0.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * spread
    X = centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))
    return (X + offset).astype(dtype), centers


CHUNKS = (3000, 5000, 1, 4000, 2999, 0, 5000)  # uneven, a 1-row and an empty block


def in_memory_and_dask(X, C0, w=None, w_dask=False, **params):
    km = KMeans(C0.shape[0], init=C0, **params).fit(X, sample_weight=w)
    Xd = da.from_array(X, chunks=(CHUNKS, X.shape[1]))
    wd = w
    if w is not None and w_dask:
        wd = da.from_array(w, chunks=(CHUNKS,))
    kd = KMeans(C0.shape[0], init=C0, **params).fit(Xd, sample_weight=wd)
    return km, kd, Xd


def assert_same_fit(km, kd, dtype):
    tol = 1e-5 if dtype == np.float32 else 1e-11
    assert isinstance(kd.labels_, da.Array)
    np.testing.assert_array_equal(kd.labels_.compute(), km.labels_)
    assert kd.n_iter_ == km.n_iter_
    assert kd.cluster_centers_.dtype == km.cluster_centers_.dtype
    scale = np.abs(km.cluster_centers_).max()
    np.testing.assert_allclose(kd.cluster_centers_, km.cluster_centers_, rtol=0,
                               atol=tol * scale)
    assert kd.inertia_ == pytest.approx(km.inertia_, rel=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("params", [{}, {"max_iter": 3}, {"tol": 0.0}],
                         ids=["default", "max_iter3", "tol0"])
def test_fit_equals_in_memory_fit(client, dtype, params):
    X, _ = blobs(20_000, 5, 6, seed=1, dtype=dtype, spread=3.0)
    C0 = X[:6].copy()
    km, kd, _ = in_memory_and_dask(X, C0, **params)
    assert_same_fit(km, kd, dtype)
    if dtype == np.float64:  # and scikit-learn, an independent implementation
        from sklearn.cluster import KMeans as SKKMeans

        sk = SKKMeans(6, init=C0, n_init=1, **params).fit(X)
        np.testing.assert_array_equal(kd.labels_.compute(), sk.labels_)
        assert kd.n_iter_ == sk.n_iter_
        np.testing.assert_allclose(kd.cluster_centers_, sk.cluster_centers_, atol=1e-9)


@pytest.mark.parametrize("w_dask", [False, True], ids=["numpy_weights", "dask_weights"])
def test_weighted_fit_far_from_origin_equals_in_memory(client, w_dask):
    # data far from the origin: both fits centre (the frame's shift) before clustering
    X, _ = blobs(20_000, 4, 5, seed=2, dtype=np.float32, offset=1e4)
    w = np.random.default_rng(0).uniform(0, 2, X.shape[0]).astype(np.float32)
    w[::7] = 0.0
    C0 = X[10:15].copy()
    km, kd, _ = in_memory_and_dask(X, C0, w=w, w_dask=w_dask)
    assert_same_fit(km, kd, np.float32)


def test_empty_cluster_relocation_equals_in_memory(client):
    X, _ = blobs(20_000, 3, 4, seed=3)
    C0 = np.vstack([X[:3], np.full((1, 3), 1e3), np.full((1, 3), -1e3)])  # 2 empty at first
    km, kd, _ = in_memory_and_dask(X, C0)
    assert_same_fit(km, kd, np.float64)
    assert len(np.unique(kd.labels_.compute())) == 5


def test_predict_transform_score_lazy_and_equal_to_in_memory(client):
    X, _ = blobs(20_000, 5, 6, seed=4)
    C0 = X[:6].copy()
    km, kd, _ = in_memory_and_dask(X, C0)
    Y, _ = blobs(7_000, 5, 6, seed=5)
    Yd = da.from_array(Y, chunks=(1500, 5))
    pred, dist = kd.predict(Yd), kd.transform(Yd)
    assert isinstance(pred, da.Array) and isinstance(dist, da.Array)
    assert pred.chunks[0] == Yd.chunks[0] and dist.shape == (7_000, 6)
    np.testing.assert_array_equal(pred.compute(), km.predict(Y))
    np.testing.assert_allclose(dist.compute(), km.transform(Y), rtol=1e-12, atol=1e-12)
    assert kd.score(Yd) == pytest.approx(km.score(Y), rel=1e-12)
    wy = np.random.default_rng(1).uniform(0, 1, 7_000)
    assert kd.score(Yd, sample_weight=wy) == pytest.approx(km.score(Y, sample_weight=wy),
                                                           rel=1e-12)
    # a model fitted in memory predicts Dask arrays too
    np.testing.assert_array_equal(km.predict(Yd).compute(), km.predict(Y))


def test_graph_does_not_grow_and_one_sync_per_iteration(client):
    X, _ = blobs(20_000, 5, 6, seed=6, spread=1.5)
    Xd = da.from_array(X, chunks=(2000, 5))
    kd = KMeans(6, init=X[:6].copy(), tol=0.0).fit(Xd)
    lloyd = [n for phase, n in _dask.last_fit_log if phase == "lloyd"]
    assert kd.n_iter_ > 5
    assert len(lloyd) == kd.n_iter_  # one map-reduce (one synchronisation) per iteration
    assert len(set(lloyd[1:])) == 1  # the same graph size at every iteration after the first
    assert lloyd[1] < 5 * Xd.numblocks[0]  # tasks per block, no history


def test_kmeans_parallel_default_init(client):
    X, true_centers = blobs(30_000, 4, 5, seed=7, spread=10.0)
    Xd = da.from_array(X, chunks=(4000, 4))
    a = KMeans(5, random_state=0).fit(Xd)
    b = KMeans(5, random_state=0).fit(Xd)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)  # bit-identical
    assert a.n_iter_ == b.n_iter_
    # it finds the blobs: every true centre has a fitted centre nearby, and the inertia
    # is that of scikit-learn's best of 10 k-means++ runs
    d = np.linalg.norm(true_centers[:, None, :] - a.cluster_centers_[None], axis=2)
    assert d.min(axis=1).max() < 0.1
    from sklearn.cluster import KMeans as SKKMeans

    sk = SKKMeans(5, n_init=10, random_state=0).fit(X)
    assert a.inertia_ == pytest.approx(sk.inertia_, rel=1e-6)


def test_results_do_not_depend_on_the_scheduler(client):
    X, _ = blobs(20_000, 5, 6, seed=8, spread=2.0)
    Xd = da.from_array(X, chunks=(2500, 5))
    a = KMeans(6, random_state=1).fit(Xd)
    with dask.config.set(scheduler="synchronous"):  # one thread in this process
        b = KMeans(6, random_state=1).fit(Xd)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_


def test_random_init_n_init_equals_in_memory(client):
    # the 'random' rows are drawn on the host as in memory: the same runs, the same best
    X, _ = blobs(12_000, 3, 5, seed=9, spread=2.0)
    Xd = da.from_array(X, chunks=(2500, 3))
    km = KMeans(5, init="random", n_init=3, random_state=5).fit(X)
    kd = KMeans(5, init="random", n_init=3, random_state=5).fit(Xd)
    assert_same_fit(km, kd, np.float64)


def test_kmeans_plusplus_on_a_sample(client):
    X, true_centers = blobs(30_000, 3, 4, seed=10, spread=20.0)
    Xd = da.from_array(X, chunks=(7000, 3))
    C, idx = kmeans_plusplus(Xd, 4, random_state=0)
    assert C.shape == (4, 3) and len(np.unique(idx)) == 4
    np.testing.assert_array_equal(C, X[idx])
    # well-separated blobs: k-means++ seeds one centre in each
    nearest = np.argmin(np.linalg.norm(C[:, None] - true_centers[None], axis=2), axis=1)
    assert sorted(nearest) == [0, 1, 2, 3]
    # usable as init
    kd = KMeans(4, init=C).fit(Xd)
    km = KMeans(4, init=C).fit(X)
    assert_same_fit(km, kd, np.float64)


def test_bad_input(client):
    X, _ = blobs(1_000, 3, 2, seed=11)
    bad = X.copy()
    bad[700, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KMeans(2).fit(da.from_array(bad, chunks=(300, 3)))
    bad[700, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        KMeans(2).fit(da.from_array(bad, chunks=(300, 3)))
    with pytest.raises(ValueError, match="2D"):
        KMeans(2).fit(da.from_array(X[:, 0], chunks=300))
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(5).fit(da.from_array(X[:3], chunks=2))
    w = np.ones(1_000)
    w[5] = -1
    with pytest.raises(ValueError, match="Negative"):
        KMeans(2).fit(da.from_array(X, chunks=(300, 3)), sample_weight=w)
    with pytest.raises(ValueError, match="one weight per sample"):
        KMeans(2).fit(da.from_array(X, chunks=(300, 3)), sample_weight=np.ones(10))
    km = KMeans(2, random_state=0).fit(da.from_array(X, chunks=(300, 3)))
    with pytest.raises(ValueError, match="features"):
        km.predict(da.from_array(X[:, :2], chunks=(300, 2)))


def test_column_chunks_are_joined(client):
    X, _ = blobs(5_000, 6, 3, seed=12)
    Xd = da.from_array(X, chunks=(1000, 2))  # three column chunks
    kd = KMeans(3, init=X[:3].copy()).fit(Xd)
    km = KMeans(3, init=X[:3].copy()).fit(X)
    assert_same_fit(km, kd, np.float64)


def _lazy_blobs(n, d, k, rows_per_block, seed=0):
    """Blobs generated block by block on the workers (never materialised on the client)."""
    centers = np.random.default_rng(seed).normal(size=(k, d)).astype(np.float32) * 8

    def make(block_info=None):
        loc = block_info[None]["chunk-location"][0]
        m = block_info[None]["chunk-shape"][0]
        rng = np.random.default_rng([seed, loc])
        out = rng.random((m, d), dtype=np.float32)  # uniform noise: cheap to draw
        out += centers[rng.integers(0, k, m)] - 0.5
        return out

    chunks = ((rows_per_block,) * (n // rows_per_block), (d,))
    return da.map_blocks(make, chunks=chunks, dtype=np.float32, meta=np.empty((0, 0),
                                                                               np.float32)), centers


def _trim_memory():
    """Hand the worker's freed heap back to the system (earlier tests leave it with the
    process), so the memory monitor sees the data, not what came before it."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def test_data_larger_than_a_worker_memory_limit(client):
    from distributed import wait

    d, k = 32, 4
    n = 8_000_000  # 1.02 GB of float32, more than one worker's 1 GB limit
    X, true_centers = _lazy_blobs(n, d, k, 125_000)
    assert X.nbytes > MEMORY_LIMIT
    # each worker gets half the blocks, placed by name (a restarted worker keeps its name), so
    # the precondition (the data spread over both) never hangs on the scheduler's placement
    names = sorted(client.scheduler_info()["workers"][a]["name"]
                   for a in client.scheduler_info()["workers"])
    assert len(names) == 2
    client.run(_trim_memory)
    me = psutil.Process()
    rss0 = me.memory_info().rss
    half = X.numblocks[0] // 2
    parts = [client.persist(X.blocks[:half], workers=[names[0]]),
             client.persist(X.blocks[half:], workers=[names[1]])]
    wait(parts)
    Xp = da.concatenate(parts)
    held = {}
    for workers in client.who_has(Xp).values():
        for wk in workers:
            held[wk] = held.get(wk, 0) + X.nbytes // X.numblocks[0]
    assert len(held) == 2 and max(held.values()) < MEMORY_LIMIT  # spread over both workers
    C0 = true_centers + np.random.default_rng(1).normal(size=true_centers.shape)
    km = KMeans(k, init=C0, max_iter=10).fit(Xp)
    assert isinstance(km.labels_, da.Array)
    grown = me.memory_info().rss - rss0
    assert grown < X.nbytes / 8, f"the client grew by {grown / 2**20:.0f} MiB"
    d_true = np.linalg.norm(true_centers[:, None] - km.cluster_centers_[None], axis=2)
    assert d_true.min(axis=1).max() < 0.01
    counts = np.bincount(km.labels_.compute(), minlength=k)
    assert counts.sum() == n and counts.min() > n / (3 * k)
    del Xp, km


def test_weighted_draws_never_pick_zero_weight_rows(client):
    X, _ = blobs(6_000, 3, 3, seed=13)
    Xd = da.from_array(X, chunks=(1000, 3))
    w = np.zeros(6_000)
    keep = np.array([17, 2500, 5999])
    w[keep] = [1.0, 2.0, 3.0]
    # greedy k-means++ (the sample is the whole set here) can only take the weighted rows
    C, idx = kmeans_plusplus(Xd, 3, sample_weight=w, random_state=0)
    assert sorted(idx.tolist()) == keep.tolist()
    np.testing.assert_array_equal(C, X[idx])
    # the first k-means|| candidate is drawn in proportion to the weights, block by block
    dd = _dask.DaskBlocks(Xd, da.from_array(w, chunks=(1000,)))
    wsums = np.array([w[i:i + 1000].sum() for i in range(0, 6_000, 1000)])
    rng = np.random.RandomState(0)
    firsts = {_dask._first_index(dd, rng, wsums) for _ in range(12)}
    assert firsts <= set(keep.tolist()) and len(firsts) > 1


def test_a_non_euclidean_metric_on_dask_is_refused_clearly():
    X = da.from_array(np.random.default_rng(0).normal(size=(40, 3)), chunks=10)
    for metric in ("cosine", "manhattan"):
        with pytest.raises(ValueError, match=f"metric='{metric}' does not take a Dask array"):
            KMeans(2, metric=metric).fit(X)


# -- MiniBatchKMeans.partial_fit on Dask arrays ------------------------------------------------
MB_CHUNKS = (1500, 2500, 1, 0, 2000, 1999)  # 8000 rows: uneven, a 1-row and an empty block


@pytest.fixture
def synchronous():
    """The single-threaded scheduler in this process: fast, and the same results (tested on
    the cluster below)."""
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.mark.parametrize("dtype, top", [(np.float32, 3e38), (np.float32, 1e-39),
                                        (np.float64, 1e300)])
def test_fit_at_the_edges_of_the_dtype_range(synchronous, dtype, top):
    """Largest |x| near the dtype's maximum, or subnormal: the scale chosen from the blocks'
    moments stays representable (3e38 float32 data ended in a TypeError), and the fit
    clusters as the in-memory fit of the values scaled to 1; 1e300 data: inertia inf."""
    rng = np.random.default_rng(0)
    base = np.r_[rng.normal(size=(100, 3)), rng.normal(size=(100, 3)) + 8]
    base /= np.abs(base).max()
    X = (base * top).astype(dtype)
    ref = KMeans(2, init=base[:2]).fit(base)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow in the moments pass
        km = KMeans(2, init=X[:2]).fit(da.from_array(X, chunks=(50, 3)))
    np.testing.assert_array_equal(km.labels_.compute(), ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_ / top, ref.cluster_centers_, atol=1e-5)
    expected = ref.inertia_ * top * top
    assert km.inertia_ == (pytest.approx(expected, rel=1e-4) if np.isfinite(expected)
                           else np.inf)


def test_a_scalar_sample_weight_scales_the_inertia(synchronous):
    X = np.random.default_rng(0).normal(size=(200, 3))
    Xd = da.from_array(X, chunks=(50, 3))
    a = KMeans(3, init=X[:3]).fit(Xd, sample_weight=2.5)
    b = KMeans(3, init=X[:3]).fit(X, sample_weight=np.full(200, 2.5))
    np.testing.assert_array_equal(a.labels_.compute(), b.labels_)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-10)
    assert a.inertia_ == pytest.approx(2.5 * KMeans(3, init=X[:3]).fit(X).inertia_, rel=1e-10)


def _dask_chunk(X, w=None):
    chunks = MB_CHUNKS if X.shape[0] == sum(MB_CHUNKS) else max(1, X.shape[0] // 3)
    Xd = da.from_array(X, chunks=(chunks, X.shape[1]))
    return Xd, None if w is None else da.from_array(w, chunks=(Xd.chunks[0],))


def _stream(seed, sizes, dtype, d=4, k=5, offset=0.0):
    """Chunks of one blob distribution (same centres), one per size."""
    centers = np.random.default_rng(seed).normal(size=(k, d)) * 5 + offset
    out = []
    for i, n in enumerate(sizes):
        r = np.random.default_rng([seed, i])
        out.append((centers[r.integers(0, k, n)] + r.normal(size=(n, d))).astype(dtype))
    return out


def assert_same_partial(a, b, dtype, labels=True):
    """``b`` (fed Dask chunks) matches ``a`` (fed the same chunks in memory)."""
    tol = 1e-5 if dtype == np.float32 else 1e-11
    assert b.n_steps_ == a.n_steps_
    assert type(b.cluster_centers_) is np.ndarray
    assert b.cluster_centers_.dtype == a.cluster_centers_.dtype
    scale = np.abs(a.cluster_centers_).max()
    np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(np.asarray(b._state.counts), np.asarray(a._state.counts),
                               rtol=tol)
    if labels:
        assert isinstance(b.labels_, da.Array)
        np.testing.assert_array_equal(b.labels_.compute(), a.labels_)
        assert b.inertia_ == pytest.approx(a.inertia_, rel=tol)


def _both(chunks, weights=None, **params):
    """The same stream into one estimator in memory, and as Dask arrays into another."""
    a, b = MiniBatchKMeans(**params), MiniBatchKMeans(**params)
    weights = weights or [None] * len(chunks)
    for X, w in zip(chunks, weights):
        a.partial_fit(X, sample_weight=w)
        Xd, wd = _dask_chunk(X, w)
        b.partial_fit(Xd, sample_weight=wd)
        yield a, b


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("init", ["k-means++", "random", "k-means||"])
def test_partial_fit_equals_in_memory_partial_fit(synchronous, dtype, init):
    # the first chunk is larger than init_size (3 * 1024): the initialisation's rows are a
    # random subset, drawn by the host generator as in memory
    chunks = _stream(20, [8000, 3000, 5000], dtype)
    for a, b in _both(chunks, n_clusters=5, init=init, random_state=3):
        assert_same_partial(a, b, dtype)
    assert b.n_steps_ == 3


def test_partial_fit_small_first_chunk_callable_and_array_init(synchronous):
    # a first chunk smaller than init_size: the initialisation runs on all its rows
    chunks = _stream(21, [2000, 8000], np.float32)
    for a, b in _both(chunks, n_clusters=4, random_state=1):
        assert_same_partial(a, b, np.float32)
    seen = []

    def init(X, k, random_state):
        seen.append(X)
        return X[random_state.choice(X.shape[0], k, replace=False)]

    for a, b in _both(chunks, n_clusters=4, init=init, random_state=2):
        assert_same_partial(a, b, np.float32)
    # the callable saw the same rows (as stored) in both runs
    assert len(seen) == 2 and type(seen[1]) is np.ndarray
    np.testing.assert_array_equal(seen[0], seen[1])
    C0 = chunks[0][:4] + 0.5
    for a, b in _both(chunks, n_clusters=4, init=C0, random_state=2):
        assert_same_partial(a, b, np.float32)


def test_partial_fit_reassigns_centres_to_rows_of_the_blocks(synchronous):
    chunks = _stream(22, [8000, 8000], np.float64)
    # two centres far away receive no rows: they are reassigned to random rows of the batch,
    # fetched from the blocks
    C0 = np.vstack([chunks[0][:3], np.full((2, 4), 1e3)])
    steps = _both(chunks, n_clusters=5, init=C0, random_state=4)
    a, b = next(steps)
    assert "reassign" in [phase for phase, _ in _dask.last_fit_log]
    assert_same_partial(a, b, np.float64)
    moved = b.cluster_centers_[3:]
    # each reassigned centre is one of the chunk's rows
    d = np.min(np.linalg.norm(chunks[0][:, None, :] - moved[None], axis=2), axis=0)
    np.testing.assert_allclose(d, 0.0, atol=1e-9)
    a, b = next(steps)
    assert_same_partial(a, b, np.float64)
    # a stream without labels reads each array once (not persisted): the reassignment rows
    # come from the blocks again
    a = MiniBatchKMeans(5, random_state=4, compute_labels=False).partial_fit(chunks[0])
    b = MiniBatchKMeans(5, random_state=4, compute_labels=False)
    b.partial_fit(_dask_chunk(chunks[0])[0])
    # a heavy chunk with no row near centre 0: its weight falls under 1 % of the largest
    X2 = chunks[1][a.predict(chunks[1]) != 0]
    w2 = np.full(X2.shape[0], 100.0)
    a.partial_fit(X2, sample_weight=w2)
    Xd, wd = _dask_chunk(X2, w2)
    b.partial_fit(Xd, sample_weight=wd)
    assert [phase for phase, _ in _dask.last_fit_log] == ["step", "reassign"]
    assert_same_partial(a, b, np.float64, labels=False)


@pytest.mark.parametrize("w_dask", [False, True], ids=["numpy_weights", "dask_weights"])
def test_weighted_partial_fit_far_from_origin(synchronous, w_dask):
    # data far from the origin: both fix a centring shift on the first chunk
    chunks = _stream(23, [8000, 8000], np.float32, offset=1e4)
    rng = np.random.default_rng(0)
    weights = [rng.uniform(0, 2, 8000).astype(np.float32) for _ in chunks]
    weights[0][::5] = 0.0
    a, b = MiniBatchKMeans(5, random_state=6), MiniBatchKMeans(5, random_state=6)
    for X, w in zip(chunks, weights):
        a.partial_fit(X, sample_weight=w)
        Xd, wd = _dask_chunk(X, w)
        b.partial_fit(Xd, sample_weight=wd if w_dask else w)
        assert b._frame.shift is not None  # centred
        assert_same_partial(a, b, np.float32)


def test_partial_fit_mixes_dask_and_in_memory_chunks(synchronous):
    chunks = _stream(24, [8000, 8000, 8000], np.float64)
    ref = MiniBatchKMeans(5, random_state=7)
    for X in chunks:
        ref.partial_fit(X)
    for pattern in ("ndn", "dnd"):
        km = MiniBatchKMeans(5, random_state=7)
        for X, kind in zip(chunks, pattern):
            km.partial_fit(_dask_chunk(X)[0] if kind == "d" else X)
        assert_same_partial(ref, km, np.float64, labels=pattern[-1] == "d")
        if pattern[-1] == "n":
            np.testing.assert_array_equal(km.labels_, ref.labels_)
    # fit in memory, then continue on a Dask chunk
    a = MiniBatchKMeans(5, random_state=8, batch_size=512).fit(chunks[0]).partial_fit(chunks[1])
    b = MiniBatchKMeans(5, random_state=8, batch_size=512).fit(chunks[0])
    b.partial_fit(_dask_chunk(chunks[1])[0])
    assert_same_partial(a, b, np.float64)


def test_partial_fit_on_dask_pickles_and_continues(synchronous):
    # the model keeps no module (the fit's namespace comes from its centres): a model fed
    # Dask chunks pickles, and the unpickled one continues the stream exactly as the original
    import pickle

    chunks = _stream(25, [6000, 4000], np.float64)
    a = MiniBatchKMeans(4, random_state=2, compute_labels=False)
    a.partial_fit(_dask_chunk(chunks[0])[0])
    b = pickle.loads(pickle.dumps(a))
    a.partial_fit(_dask_chunk(chunks[1])[0])
    b.partial_fit(_dask_chunk(chunks[1])[0])
    assert_same_partial(a, b, np.float64, labels=False)
    np.testing.assert_array_equal(b.cluster_centers_, a.cluster_centers_)


def test_partial_fit_syncs_and_lazy_labels(synchronous):
    chunks = _stream(25, [8000, 8000, 8000], np.float64)
    km = MiniBatchKMeans(5, random_state=9)
    km.partial_fit(_dask_chunk(chunks[0])[0])
    assert [phase for phase, _ in _dask.last_fit_log] == ["frame", "init", "step", "labels"]
    km.partial_fit(_dask_chunk(chunks[1])[0])
    # one synchronisation for the step's statistics, one for labels_ and inertia_
    assert [phase for phase, _ in _dask.last_fit_log] == ["step", "labels"]
    step_tasks = _dask.last_fit_log[0][1]
    n_live = sum(1 for s in MB_CHUNKS if s)
    assert step_tasks <= 2 * n_live + 3  # blocks, centres, a reduce tree: no history
    labels = km.labels_
    assert isinstance(labels, da.Array) and labels.shape == (8000,)
    km.set_params(compute_labels=False)
    km.partial_fit(_dask_chunk(chunks[2])[0])
    assert [phase for phase, _ in _dask.last_fit_log] == ["step"]  # the one synchronisation
    assert km.labels_ is labels  # left as it was, as in memory
    assert km.n_steps_ == 3


def test_partial_fit_on_the_cluster(client):
    chunks = _stream(26, [8000, 8000], np.float32)
    with dask.config.set(scheduler="synchronous"):
        ref = list(_both(chunks, n_clusters=5, random_state=10))
    a_mem, b_sync = ref[-1]
    b = MiniBatchKMeans(5, random_state=10)
    for X in chunks:
        b.partial_fit(_dask_chunk(X)[0])
    # the same bits as on the single-threaded scheduler; in memory within rounding
    np.testing.assert_array_equal(b.cluster_centers_, b_sync.cluster_centers_)
    np.testing.assert_array_equal(b.labels_.compute(), b_sync.labels_.compute())
    assert b.inertia_ == b_sync.inertia_
    assert_same_partial(a_mem, b, np.float32)


def test_minibatch_predict_transform_score_on_dask(synchronous):
    chunks = _stream(27, [8000, 6000], np.float64)
    km = MiniBatchKMeans(5, random_state=11).partial_fit(_dask_chunk(chunks[0])[0])
    Y = chunks[1]
    Yd = da.from_array(Y, chunks=(1500, 4))
    pred, dist = km.predict(Yd), km.transform(Yd)
    assert isinstance(pred, da.Array) and isinstance(dist, da.Array)
    np.testing.assert_array_equal(pred.compute(), km.predict(Y))
    np.testing.assert_allclose(dist.compute(), km.transform(Y), rtol=1e-12, atol=1e-12)
    wy = np.random.default_rng(2).uniform(0, 1, Y.shape[0])
    assert km.score(Yd, sample_weight=wy) == pytest.approx(km.score(Y, sample_weight=wy),
                                                           rel=1e-12)
    # independent reference: distances to the centres by NumPy
    ref = np.linalg.norm(Y[:, None, :] - km.cluster_centers_[None], axis=2)
    np.testing.assert_array_equal(pred.compute(), ref.argmin(axis=1))
    assert km.score(Yd) == pytest.approx(-(ref.min(axis=1) ** 2).sum(), rel=1e-10)


def test_minibatch_fit_refuses_a_dask_array():
    X = da.from_array(np.random.default_rng(0).normal(size=(100, 3)), chunks=30)
    with pytest.raises(TypeError, match="partial_fit") as info:
        MiniBatchKMeans(2).fit(X)
    assert "KMeans(n_clusters).fit(X)" in str(info.value)
    with pytest.raises(TypeError, match="partial_fit"):
        MiniBatchKMeans(2).fit_predict(X)


def test_partial_fit_bad_input(synchronous):
    chunks = _stream(28, [3000, 3000], np.float64)
    bad = chunks[0].copy()
    bad[1234, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # first call: the frame pass
        MiniBatchKMeans(3).partial_fit(_dask_chunk(bad)[0])
    km = MiniBatchKMeans(3, random_state=0).partial_fit(_dask_chunk(chunks[0])[0])
    before = km.cluster_centers_.copy(), np.asarray(km._state.counts).copy(), km.n_steps_
    for value, msg in ((np.nan, "NaN"), (np.inf, "infinity")):
        bad = chunks[1].copy()
        bad[2500, 0] = value
        with pytest.raises(ValueError, match=f"X contains {msg}"):  # later call: the step
            km.partial_fit(_dask_chunk(bad)[0])
    w = np.ones(3000)
    w[17] = -1.0
    with pytest.raises(ValueError, match="Negative"):
        km.partial_fit(_dask_chunk(chunks[1])[0], sample_weight=w)
    with pytest.raises(ValueError, match="sums to zero"):
        km.partial_fit(_dask_chunk(chunks[1])[0], sample_weight=np.zeros(3000))
    # nothing changed
    np.testing.assert_array_equal(km.cluster_centers_, before[0])
    np.testing.assert_array_equal(np.asarray(km._state.counts), before[1])
    assert km.n_steps_ == before[2]
    with pytest.raises(ValueError, match="features"):
        km.partial_fit(_dask_chunk(chunks[1][:, :3])[0])
    with pytest.raises(ValueError, match="n_clusters"):
        MiniBatchKMeans(5).partial_fit(_dask_chunk(chunks[0][:3])[0])
    # a model of another namespace does not take NumPy-backed Dask chunks
    xps = pytest.importorskip("array_api_strict")
    other = MiniBatchKMeans(3, random_state=0).partial_fit(xps.asarray(chunks[0]))
    with pytest.raises(DataNamespaceError, match="namespace"):
        other.partial_fit(_dask_chunk(chunks[1])[0])
    # and the metric refusal of KMeans stays
    with pytest.raises(ValueError, match="does not take a Dask array"):
        KMeans(2, metric="cosine").fit(_dask_chunk(chunks[1])[0])
