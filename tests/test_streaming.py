"""Streaming a host array (np.memmap) to a device: KMeans.fit(X, device=...)."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

from kmeans_xp import KMeans, MiniBatchKMeans


def _memmap(tmp_path, n, d, k=6, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    C = rng.normal(scale=5.0, size=(k, d))
    path = tmp_path / "X.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, d))
    for s in range(0, n, 50_000):  # written in pieces: the test itself stays small in memory
        e = min(s + 50_000, n)
        mm[s:e] = C[rng.integers(0, k, e - s)] + rng.normal(size=(e - s, d)) + offset
    mm.flush()
    del mm
    return np.memmap(path, dtype=np.float32, mode="r", shape=(n, d))


def _target(backend):
    if backend.kind == "numpy":
        pytest.skip("streaming moves host data to another namespace's device")
    return backend.device


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_streamed_fit_equals_the_fit_on_device_data(backend, tmp_path, offset, monkeypatch):
    # streamed chunks always take the chunk loop of the namespace's kernel set; the fused
    # sets (numba on the CPU, Triton on a GPU), which read X whole, are compared with that
    # loop in test_kernels.py: here both fits use the same set, so the bits must agree
    monkeypatch.setenv("KMEANS_XP_KERNELS", "generic")
    device = _target(backend)
    X = _memmap(tmp_path, 20_000, 8, offset=offset)
    w = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]).astype(np.float32)
    a = KMeans(6, random_state=0, chunk_size=3000).fit(X, device=device,
                                                       sample_weight=backend.asarray(w))
    b = KMeans(6, random_state=0, chunk_size=3000).fit(backend.asarray(np.array(X)),
                                                       sample_weight=backend.asarray(w))
    backend.assert_native(a.cluster_centers_, backend.dtype("float32"))
    backend.assert_native(a.labels_)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_array_equal(backend.to_numpy(a.labels_), backend.to_numpy(b.labels_))
    np.testing.assert_array_equal(backend.to_numpy(a.cluster_centers_),
                                  backend.to_numpy(b.cluster_centers_))
    assert a.inertia_ == b.inertia_
    # the fitted model lives on the device
    np.testing.assert_array_equal(
        backend.to_numpy(a.predict(backend.asarray(np.array(X[:100])))),
        backend.to_numpy(a.labels_)[:100])


def _rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon")  # pragma: no cover


def test_streaming_from_a_memmap_uses_bounded_host_memory(backend, tmp_path):
    device = _target(backend)
    n, d = 200_000, 64  # 51 MB of float32 on disk
    X = _memmap(tmp_path, n, d)
    nbytes = n * d * 4
    base = _rss_anon()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_anon())
            time.sleep(0.002)

    t = threading.Thread(target=sample)
    tracemalloc.start()
    t.start()
    try:
        km = KMeans(6, random_state=0, chunk_size=4096, max_iter=5).fit(X, device=device)
    finally:
        stop.set()
        t.join()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert km.n_iter_ >= 1
    # host (NumPy) allocations: staging chunks and O(n) vectors (labels, the previous labels,
    # k-means++'s float64 distances and cumulative sums): at most 64 B per row, as the memory
    # test of test_numerics.py allows; X is 256 B per row here, and never held whole
    assert traced_peak < 64 * n, traced_peak
    assert traced_peak < 0.25 * nbytes, traced_peak
    # anonymous resident memory (here the "device" is the CPU, so it includes the
    # device's O(n) vectors): far below a copy of X; the memmap's own pages are file-backed
    assert peak[0] - base < 0.4 * nbytes, (peak[0] - base)


def test_partial_fit_on_memmap_chunks(backend, tmp_path):
    X = _memmap(tmp_path, 24_000, 8, seed=3)
    km = MiniBatchKMeans(6, random_state=0)
    for s in range(0, 24_000, 2000):
        km.partial_fit(backend.asarray(np.array(X[s:s + 2000])))
    ref = KMeans(6, random_state=0).fit(backend.asarray(np.array(X)))
    assert km.n_steps_ == 12
    assert -km.score(backend.asarray(np.array(X))) <= 1.25 * ref.inertia_


def test_device_argument_is_checked():
    X = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(TypeError, match="device"):
        KMeans(2).fit(X, device=object())
