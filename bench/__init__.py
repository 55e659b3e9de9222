"""Benchmarks of kmeans_xp against its peers: ``python -m bench``."""
