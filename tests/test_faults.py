"""Faults, interruption and concurrency: what a careful user relies on, held by tests.

- a Dask worker process killed in the middle of ``KMeans.fit`` and between the
  ``partial_fit`` calls of ``MiniBatchKMeans``: the result equals the undisturbed fit, bit
  for bit (the lost blocks are recomputed and the reductions run in block order);
- ``KeyboardInterrupt`` in the middle of a fit (raised by a kernel method after a few
  passes, or delivered as SIGINT by a timer) leaves the estimator as it was and the process
  usable: the next fit equals a clean one;
- fits from 4 threads at once equal sequential fits (NumPy, torch CPU, fused and vendor
  kernel sets);
- fits in forked and spawned processes after the parent has fitted (numba's and torch's
  threads running) equal the parent's;
- results are bit-identical across ``NUMBA_NUM_THREADS`` and ``OMP_NUM_THREADS`` of 1 and 2.

The short variants run by default in a few seconds each; ``-m slow`` adds the long ones.
A hang fails the test (every wait has a timeout) instead of blocking the run.
"""

from __future__ import annotations

import _thread
import concurrent.futures as cf
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kmeans_xp import KMeans, MiniBatchKMeans, _base
from kmeans_xp._compat import to_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 180  # seconds: a wait longer than this is a hang, and fails


def blobs(n, d=8, k=6, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(k, d))
    return (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(dtype)


def fitted(est) -> dict:
    """The fitted attributes of ``est`` as host values (arrays as NumPy)."""
    out = {}
    for name in ("cluster_centers_", "labels_", "inertia_", "n_iter_", "n_steps_"):
        if hasattr(est, name):
            v = getattr(est, name)
            if hasattr(v, "compute"):
                v = v.compute()
            out[name] = np.asarray(to_numpy(v)) if not isinstance(v, (int, float)) else v
    return out


def assert_same_fit(a: dict, b: dict) -> None:
    assert a.keys() == b.keys(), (a.keys(), b.keys())
    for name in a:
        if isinstance(a[name], np.ndarray):
            assert a[name].dtype == b[name].dtype, name
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # bit for bit
        else:
            assert a[name] == b[name], (name, a[name], b[name])


def _torch():
    return pytest.importorskip("torch")


def as_backend(X, backend):
    return X if backend == "numpy" else _torch().from_numpy(X)


# -- a Dask worker killed --------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    import dask
    from distributed import Client, LocalCluster

    # the tasks of a killed worker are rerun elsewhere; never count them as the task's fault
    with dask.config.set({"distributed.scheduler.allowed-failures": 10}):
        lc = LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            memory_limit="1GB",
            dashboard_address=":0",
        )
        client = Client(lc)
    try:
        yield client
    finally:
        client.close()
        lc.close()


def _worker_pids(client, gone: int | None = None) -> list[int]:
    """The pids of the 2 live workers (waits for a killed one, ``gone``, to be replaced)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            client.wait_for_workers(2, timeout=10)
            pids = sorted(client.run(os.getpid, on_error="raise").values())
            if len(pids) == 2 and gone not in pids:
                return pids
        except Exception:  # a dead worker still listed: ask again
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            pytest.fail(f"the cluster did not come back to 2 workers: {client}")
        time.sleep(0.2)


def _kill_when(client, condition, victim_index=0):
    """A thread that SIGKILLs one worker process as soon as ``condition()`` holds; returns
    (thread, record) with record['killed'] the pid and record['at'] the time."""
    pid = _worker_pids(client)[victim_index]
    record = {}

    def run():
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            if time.monotonic() > deadline:
                return  # no kill: the test fails on the empty record
            time.sleep(0.002)
        os.kill(pid, signal.SIGKILL)
        record.update(killed=pid, at=time.monotonic())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, record


def _results(pool, futures) -> list:
    """The futures' results; past TIMEOUT seconds the test fails (and does not wait for
    the hung threads, nor leave the pool's processes running)."""
    try:
        out = [f.result(timeout=TIMEOUT) for f in futures]
    except cf.TimeoutError:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        pytest.fail(f"hung: no result after {TIMEOUT} s")
    pool.shutdown(wait=True)
    return out


def _in_thread(fn):
    """``fn()`` in a daemon thread, failed (not blocked, now or at exit) past TIMEOUT s."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the test's thread
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(TIMEOUT)
    if t.is_alive():
        pytest.fail(f"hung: no result after {TIMEOUT} s")
    if "error" in out:
        raise out["error"]
    return out["value"]


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie child of the nanny is gone too
        with open(f"/proc/{pid}/status") as f:
            return "zombie" in f.read()
    except OSError:
        return True


def _dask_fit_killed_at(client, X, chunks, fraction, params):
    """A worker killed once ``fraction`` of the undisturbed fit's passes over X have begun."""
    import dask.array as da

    from kmeans_xp._dask import last_fit_log

    Xd = da.from_array(X, chunks=(chunks, X.shape[1]))
    ref = fitted(_in_thread(lambda: KMeans(**params).fit(Xd)))
    passes_ref = len(last_fit_log)
    kill_after_passes = min(max(1, int(fraction * passes_ref)), passes_ref - 1)
    last_fit_log.clear()
    killer, record = _kill_when(client, lambda: len(last_fit_log) >= kill_after_passes)
    km = _in_thread(lambda: KMeans(**params).fit(da.from_array(X, chunks=(chunks, X.shape[1]))))
    end = time.monotonic()
    killer.join(TIMEOUT)
    passes = len(last_fit_log)
    # the kill came in the middle of the fit: passes ran after it
    assert record, f"the fit ended before its pass {kill_after_passes} of {passes_ref}"
    assert record["at"] < end and _pid_gone(record["killed"])
    assert kill_after_passes < passes == passes_ref, (kill_after_passes, passes, passes_ref)
    assert_same_fit(fitted(km), ref)
    _worker_pids(client, gone=record["killed"])  # restarted: 2 workers for the next test


def test_dask_worker_killed_mid_fit(cluster):
    X = blobs(12_000)
    params = dict(n_clusters=6, random_state=0, max_iter=8, tol=0.0)
    _dask_fit_killed_at(cluster, X, 2000, 0.5, params)


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5, 0.9])
def test_dask_worker_killed_mid_fit_long(cluster, fraction):
    """Killed in the first pass (X persisted, the frame), in the initialisation and in
    Lloyd's iterations."""
    X = blobs(200_000, d=16, k=10, seed=1)
    params = dict(n_clusters=10, random_state=1, max_iter=30, tol=0.0)
    _dask_fit_killed_at(cluster, X, 20_000, fraction, params)


def _partial_fits(chunks_of_X, kill_between=None, client=None):
    import dask.array as da

    est = MiniBatchKMeans(5, random_state=0, batch_size=2048, n_init=1)
    pids = []
    for i, Xi in enumerate(chunks_of_X):
        if i == kill_between:
            pid = _worker_pids(client)[0]
            os.kill(pid, signal.SIGKILL)
            pids.append(pid)
            deadline = time.monotonic() + 30
            while not _pid_gone(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        Xd = da.from_array(Xi, chunks=(1500, Xi.shape[1]))
        _in_thread(lambda est=est, Xd=Xd: est.partial_fit(Xd))
    return est, pids


@pytest.mark.parametrize("kill_between", [2])
def test_dask_worker_killed_between_partial_fits(cluster, kill_between):
    stream = [blobs(6000, seed=s) for s in range(4)]
    ref = fitted(_partial_fits(stream)[0])
    est, pids = _partial_fits(stream, kill_between, cluster)
    assert pids and _pid_gone(pids[0])
    assert_same_fit(fitted(est), ref)
    _worker_pids(cluster, gone=pids[0])


@pytest.mark.slow
def test_dask_worker_killed_between_every_partial_fit(cluster):
    stream = [blobs(20_000, seed=s) for s in range(6)]
    ref = fitted(_partial_fits(stream)[0])
    for i in range(1, 6):
        est, pids = _partial_fits(stream, i, cluster)
        assert_same_fit(fitted(est), ref)
        _worker_pids(cluster, gone=pids[0])


# -- KeyboardInterrupt in the middle of a fit --------------------------------------------------
class _Interrupt:
    """The fit's kernel set, its method ``method`` raising KeyboardInterrupt on call ``at``
    (``at=None``: only counts the calls)."""

    def __init__(self, monkeypatch, method, at=None):
        self.calls, self.at = 0, at
        select = _base.select

        def patched(*a, **k):
            kern = select(*a, **k)
            orig = getattr(kern, method)

            def wrapper(*args, **kwargs):
                self.calls += 1
                if self.calls == self.at:
                    raise KeyboardInterrupt
                return orig(*args, **kwargs)

            setattr(kern, method, wrapper)
            return kern

        monkeypatch.setattr(_base, "select", patched)


ESTIMATORS = {
    "KMeans": (lambda: KMeans(5, random_state=0, n_init=2, tol=0.0, max_iter=8), "lloyd_pass"),
    "MiniBatchKMeans": (
        lambda: MiniBatchKMeans(5, random_state=0, batch_size=256, n_init=2, max_iter=3),
        "minibatch_move",
    ),
    "MiniBatchKMeans-labels": (
        lambda: MiniBatchKMeans(5, random_state=0, batch_size=256, n_init=2, max_iter=3),
        "labels_inertia",
    ),
}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("which", list(ESTIMATORS))
@pytest.mark.parametrize("previous", ["unfitted", "fitted"])
def test_keyboard_interrupt_leaves_the_estimator_as_it_was(monkeypatch, backend, which, previous):
    make, method = ESTIMATORS[which]
    X = as_backend(blobs(3000), backend)
    Y = as_backend(blobs(2000, seed=7) + 3, backend)  # the previous fit: other data
    clean = fitted(make().fit(X))
    with monkeypatch.context() as m:  # how many calls a fit makes
        counter = _Interrupt(m, method)
        make().fit(X)
    n_calls = counter.calls
    assert n_calls >= 2, n_calls
    for at in sorted({2, (n_calls + 1) // 2 + 1, n_calls}):  # early, midway, the last call
        est = make()
        if previous == "fitted":
            est.fit(Y)
        before = dict(est.__dict__)
        with monkeypatch.context() as m:
            _Interrupt(m, method, at=at)
            with pytest.raises(KeyboardInterrupt):
                est.fit(X)
        # the estimator as it was: the same attributes, the very same objects
        assert est.__dict__.keys() == before.keys(), (at, set(est.__dict__) ^ set(before))
        for name, value in before.items():
            assert est.__dict__[name] is value, (at, name)
        # and the process usable: the next fit is the clean one
        assert_same_fit(fitted(est.fit(X)), clean)


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt in this test, however the process was started (a
    shell starts background jobs with SIGINT ignored, and ``interrupt_main`` then does
    nothing)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted_fits(est, X, delay) -> None:
    """Fits ``est`` on X again and again until SIGINT, sent ``delay`` s from now, lands."""
    timer = threading.Timer(delay, _thread.interrupt_main)
    with pytest.raises(KeyboardInterrupt):
        timer.start()
        deadline = time.monotonic() + delay + TIMEOUT
        while time.monotonic() < deadline:
            est.fit(X)
    timer.join()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sigint_during_fits_leaves_a_usable_process(backend, sigint_raises):
    """SIGINT (``_thread.interrupt_main``) from a timer lands wherever the fits are, inside
    compiled kernels included: the estimator holds its previous (identical) fit or none,
    and the next fit equals a clean one."""
    X = as_backend(blobs(20_000), backend)
    clean = fitted(KMeans(5, random_state=0, tol=0.0, max_iter=20).fit(X))
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.01, 0.3, size=3):
        est = KMeans(5, random_state=0, tol=0.0, max_iter=20)
        _interrupted_fits(est, X, delay)
        if hasattr(est, "cluster_centers_"):
            assert_same_fit(fitted(est), clean)
        assert_same_fit(fitted(est.fit(X)), clean)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("cls", ["KMeans", "MiniBatchKMeans"])
def test_sigint_during_fits_long(backend, cls, sigint_raises):
    X = as_backend(blobs(100_000, d=16), backend)

    def make():
        if cls == "KMeans":
            return KMeans(8, random_state=0, tol=0.0, max_iter=20, n_init=2)
        return MiniBatchKMeans(8, random_state=0, batch_size=1024, max_iter=2)

    clean = fitted(make().fit(X))
    for delay in np.random.default_rng(1).uniform(0.01, 1.5, size=12):
        est = make().fit(X)
        _interrupted_fits(est, X, delay)
        assert_same_fit(fitted(est), clean)
    assert_same_fit(fitted(make().fit(X)), clean)


# -- threads ---------------------------------------------------------------------------------
@pytest.fixture(params=["fused", "generic"])
def kernel_sets(request, monkeypatch):
    """The fused CPU set (numba), or the vendor sets (``KMEANS_XP_KERNELS=generic``)."""
    from kmeans_xp._kernels import _cpu

    if request.param == "fused":
        if not _cpu.available():
            pytest.skip("numba is not installed: no fused CPU set")
        monkeypatch.delenv("KMEANS_XP_KERNELS", raising=False)
    else:
        monkeypatch.setenv("KMEANS_XP_KERNELS", "generic")
    return request.param


def _concurrent(fns, n_threads=4):
    """``fns`` run from ``n_threads`` threads released together; their results in order."""
    barrier = threading.Barrier(n_threads)

    def call(fn):
        barrier.wait(timeout=TIMEOUT)
        return fn()

    pool = cf.ThreadPoolExecutor(n_threads)
    return _results(pool, [pool.submit(call, fn) for fn in fns])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fits_from_four_threads_equal_sequential_fits(kernel_sets, backend):
    data = [as_backend(blobs(5000, seed=s), backend) for s in range(4)]
    makers = [
        lambda: KMeans(6, random_state=1, n_init=2, tol=0.0, max_iter=10),
        lambda: MiniBatchKMeans(6, random_state=2, batch_size=512, max_iter=3),
        lambda: KMeans(6, random_state=3, init="k-means||"),
        lambda: KMeans(6, random_state=4, init="random", n_init=3),
    ]
    threads_before = _torch().get_num_threads() if backend == "torch" else None
    if kernel_sets == "fused":
        from kmeans_xp._compat import array_namespace, device_of
        from kmeans_xp._kernels import select

        X0 = data[0]
        assert select(array_namespace(X0), device_of(X0), X0.dtype).name == "cpu"
    sequential = [fitted(make().fit(X)) for make, X in zip(makers, data)]
    for _ in range(2):
        together = _concurrent([lambda m=m, X=X: fitted(m().fit(X)) for m, X in zip(makers, data)])
        for a, b in zip(together, sequential):
            assert_same_fit(a, b)
    if threads_before is not None:  # the fits leave torch's thread pool as they found it
        assert _torch().get_num_threads() == threads_before


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fits_from_eight_threads_long(kernel_sets, backend):
    data = [as_backend(blobs(60_000, d=16, k=12, seed=s), backend) for s in range(8)]
    sequential = [
        fitted(KMeans(12, random_state=s, tol=0.0, max_iter=20).fit(X)) for s, X in enumerate(data)
    ]
    for _ in range(3):
        together = _concurrent(
            [
                lambda s=s, X=X: fitted(KMeans(12, random_state=s, tol=0.0, max_iter=20).fit(X))
                for s, X in enumerate(data)
            ],
            n_threads=8,
        )
        for a, b in zip(together, sequential):
            assert_same_fit(a, b)


# -- worker processes (fork, spawn) ----------------------------------------------------------
def _child_fits(X: np.ndarray, with_torch: bool) -> list[dict]:
    """The fits a child process makes (module level: spawn imports it)."""
    out = [
        fitted(KMeans(6, random_state=0, n_init=2, tol=0.0, max_iter=10).fit(X)),
        fitted(MiniBatchKMeans(6, random_state=0, batch_size=512, max_iter=3).fit(X)),
    ]
    if with_torch:
        import torch

        Xt = torch.from_numpy(X)
        out.append(fitted(KMeans(6, random_state=0, n_init=2, tol=0.0, max_iter=10).fit(Xt)))
    return out


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_fits_in_forked_and_spawned_processes_equal_the_parent(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    try:
        import torch  # noqa: F401

        with_torch = True
    except ImportError:
        with_torch = False
    X = blobs(20_000)
    parent = _child_fits(X, with_torch)  # numba's and torch's thread pools now running
    ctx = multiprocessing.get_context(method)
    pool = cf.ProcessPoolExecutor(1, mp_context=ctx)
    children = _results(
        pool, [pool.submit(_child_fits, X, with_torch) for _ in range(2)]
    )  # one child, twice
    for child in children:
        assert len(child) == len(parent)
        for a, b in zip(child, parent):
            assert_same_fit(a, b)


# -- thread counts ---------------------------------------------------------------------------
_THREADS_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from kmeans_xp import KMeans, MiniBatchKMeans
from kmeans_xp._compat import to_numpy
n = int(sys.argv[2])
rng = np.random.default_rng(0)
C = rng.normal(scale=5.0, size=(8, 16))
X = (C[rng.integers(0, 8, n)] + rng.normal(size=(n, 16))).astype(np.float32)
h = {}
def digest(est):
    parts = [np.asarray(to_numpy(est.cluster_centers_)), np.asarray(to_numpy(est.labels_)),
             np.float64(est.inertia_), np.int64(est.n_iter_)]
    return hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts)).hexdigest()
for name, X_ in [("numpy", X), ("numpy64", X.astype(np.float64))][:1 if n < 100_000 else 2]:
    h[name + "-kmeans"] = digest(KMeans(8, random_state=0, n_init=2, tol=0.0, max_iter=15).fit(X_))
    mb = MiniBatchKMeans(8, random_state=0, batch_size=1024, max_iter=2)
    h[name + "-minibatch"] = digest(mb.fit(X_))
info = {}
try:
    import torch
    Xt = torch.from_numpy(X)
    h["torch-kmeans"] = digest(KMeans(8, random_state=0, n_init=2, tol=0.0, max_iter=15).fit(Xt))
    mb = MiniBatchKMeans(8, random_state=0, batch_size=1024, max_iter=2)
    h["torch-minibatch"] = digest(mb.fit(Xt))
    info["torch_threads"] = torch.get_num_threads()
except ImportError:
    pass
try:
    import numba
    info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
except ImportError:
    pass
print(json.dumps({"hashes": h, "info": info}))
"""


def _run_with_threads(numba_threads: int, omp_threads: int, n: int) -> dict:
    env = dict(
        os.environ,
        NUMBA_NUM_THREADS=str(numba_threads),
        OMP_NUM_THREADS=str(omp_threads),
        OPENBLAS_NUM_THREADS=str(omp_threads),
        MKL_NUM_THREADS=str(omp_threads),
    )
    proc = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT, ROOT, str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "numba_threads" in out["info"]:
        assert out["info"]["numba_threads"] == numba_threads
    if "torch_threads" in out["info"]:
        assert out["info"]["torch_threads"] == omp_threads
    return out["hashes"]


def test_bit_identical_across_thread_counts_in_process(kernel_sets):
    """numba's, torch's and BLAS's threads switched between 1 and 2 at run time."""
    numba = pytest.importorskip("numba") if kernel_sets == "fused" else None
    torch = _torch()
    from threadpoolctl import threadpool_limits

    X = blobs(30_000, d=16, k=8)
    runs = []
    for threads in (1, 2, 1):
        numba_before, torch_before = (
            numba.get_num_threads() if numba else None,
            torch.get_num_threads(),
        )
        try:
            if numba:
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            torch.set_num_threads(threads)
            with threadpool_limits(threads):
                runs.append(
                    [
                        fitted(KMeans(8, random_state=0, tol=0.0, max_iter=10).fit(Xb))
                        for Xb in (X, torch.from_numpy(X), X.astype(np.float64))
                    ]
                    + [
                        fitted(
                            MiniBatchKMeans(8, random_state=0, batch_size=1024, max_iter=2).fit(X)
                        )
                    ]
                )
        finally:
            if numba:
                numba.set_num_threads(numba_before)
            torch.set_num_threads(torch_before)
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert_same_fit(a, b)


@pytest.mark.parametrize(
    "n, combos",
    [
        pytest.param(20_000, [(1, 1), (2, 2)], id="short"),
        pytest.param(400_000, [(1, 1), (2, 2), (1, 2), (2, 1)], id="long", marks=pytest.mark.slow),
    ],
)
def test_bit_identical_across_thread_counts(n, combos):
    """Subprocesses started with NUMBA_NUM_THREADS and OMP_NUM_THREADS (and BLAS's) of 1, 2."""
    with cf.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: _run_with_threads(*c, n), combos))
    for combo, r in zip(combos[1:], results[1:]):
        diff = [name for name in r if r[name] != results[0][name]]
        assert not diff, (combo, diff)
    assert len(results[0]) >= 4
