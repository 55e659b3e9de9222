"""Root conftest: doctest collection skips modules whose optional accelerator is missing."""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("triton") is None or importlib.util.find_spec("torch") is None:
    collect_ignore.append("kmeans_xp/_kernels/_triton.py")
