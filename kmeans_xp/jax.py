"""k-means for use inside ``jax.jit`` and ``jax.vmap`` (importing this module imports JAX).

:class:`kmeans_xp.KMeans` fits ``jax.Array`` data with compiled passes, but it cannot run
inside a JAX transformation (it reads a convergence test back to the host at each
iteration).  :func:`lloyd` is the Lloyd iteration as a pure function of arrays, for code
that must stay traced::

    import jax
    from kmeans_xp.jax import lloyd

    centers, labels, inertia, n_iter = jax.jit(lloyd, static_argnums=2)(X, C0, 100, 1e-4)
    batched = jax.vmap(lloyd, in_axes=(0, 0, None, None))(Xs, C0s, 100, 1e-4)
"""

from ._kernels._jax import lloyd

__all__ = ["lloyd"]
