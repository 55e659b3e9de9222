"""Memory measurement shared by the tests (not a test module)."""

import tracemalloc


def peak_traced(fn) -> int:
    """Peak bytes traced by tracemalloc (Python and NumPy allocations) while ``fn()`` runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
