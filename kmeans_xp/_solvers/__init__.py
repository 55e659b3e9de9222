"""The algorithms, written once on ``xp`` and the kernel set of the fit (``data.kernels``).

``lloyd``: Lloyd's iteration, convergence, empty-cluster relocation.  ``init``: k-means++,
k-means||, random rows, user arrays and callables.
"""
