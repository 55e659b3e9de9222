"""Root conftest: SciPy's array-API mode for the tests, and doctest collection skips modules
whose optional accelerator is missing."""

import importlib.util
import os

# scikit-learn's array-API estimator checks (check_array_api_input, ...) run only when SciPy
# was imported with SCIPY_ARRAY_API=1; this file is loaded before any test imports SciPy.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

collect_ignore = []
if importlib.util.find_spec("triton") is None or importlib.util.find_spec("torch") is None:
    collect_ignore.append("kmeans_xp/_kernels/_triton.py")
