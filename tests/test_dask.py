"""KMeans on Dask arrays, on a dask.distributed LocalCluster of 2 worker processes.

The cluster is started once for the module and closed at its end; its teardown checks that
no worker process is left.  The reference for every fit is the in-memory fit of the same
data from the same initial centres (and scikit-learn where it applies).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

import dask  # noqa: E402

import kmeans_xp  # noqa: E402
from kmeans_xp import KMeans, kmeans_plusplus  # noqa: E402
from kmeans_xp import _dask  # noqa: E402

MEMORY_LIMIT = 600_000_000  # bytes per worker
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
    km, kd, Xd = in_memory_and_dask(X, C0)
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


def test_data_larger_than_a_worker_memory_limit(client):
    from distributed import wait

    d, k = 32, 4
    n = 5_000_000  # 640 MB of float32, more than one worker's 600 MB limit
    X, true_centers = _lazy_blobs(n, d, k, 250_000)
    assert X.nbytes > MEMORY_LIMIT
    me = psutil.Process()
    rss0 = me.memory_info().rss
    Xp = X.persist()
    wait(Xp)
    held = {}
    for key, workers in client.who_has(Xp).items():
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
