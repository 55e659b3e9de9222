"""Peak memory of a fit on a large float32 array, measured as the process's resident
high-water mark (``VmHWM``) in a fresh process, against the input's size.

Beyond X, a fit holds a few (chunk x max(k, d)) work blocks (the CPU budget is about 2**20
elements: 4 MiB in float32), the fused pass's partial sums (at most 4 MiB), and O(n)
vectors (labels, k-means++ distances): never a copy of X nor an (n, k) matrix.  The short
variant (200 MB) runs by default; ``-m slow`` adds a 2 GB array.
"""

from __future__ import annotations

import os

import pytest

from tests._memory import fit_peak_rss

BLOCK = 4 << 20  # one (chunk x max(k, d)) float32 work block at the CPU budget of 2**20
SLACK = 16 << 20  # allocator arenas, thread stacks, small host arrays

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="VmHWM is read from /proc/self/status (Linux)"
)


def _bound(n: int) -> int:
    return 24 * n + 8 * BLOCK + SLACK  # O(n) vectors, a few blocks and partial sums


def _check(n, d, k, backend, estimator):
    if backend == "torch":
        pytest.importorskip("torch")
    r = fit_peak_rss(n, d, k, backend, estimator)
    assert r["reset"] or r["hwm_before"] <= r["base"] + SLACK, r  # a clean measurement
    # X (4 d bytes a row) is not copied: what the fit adds stays within the bound
    assert r["extra"] <= _bound(n), (r, _bound(n))
    return r


@pytest.mark.parametrize(
    "backend, estimator", [("numpy", "KMeans"), ("torch", "KMeans"), ("numpy", "MiniBatchKMeans")]
)
def test_fit_peak_memory_beyond_X_is_a_few_blocks(backend, estimator):
    """A 200 MB float32 X (500,000 x 100): the fit adds at most 24 B a row + 8 blocks."""
    _check(500_000, 100, 8, backend, estimator)


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend, estimator",
    [
        ("numpy", "KMeans"),
        ("torch", "KMeans"),
        ("numpy", "MiniBatchKMeans"),
        ("torch", "MiniBatchKMeans"),
    ],
)
def test_fit_peak_memory_beyond_X_is_a_few_blocks_2gb(backend, estimator):
    """A 2 GB float32 X (5,000,000 x 100, 1.86 GiB)."""
    r = _check(5_000_000, 100, 16, backend, estimator)
    print(
        f"\n{backend} {estimator}: X {r['x_bytes'] / 2**20:.0f} MiB, "
        f"fit adds {r['extra'] / 2**20:.1f} MiB (bound {_bound(5_000_000) / 2**20:.0f} MiB)"
    )
