"""The exceptions and warnings of kmeans_xp, joined to scikit-learn's without importing it.

Nothing here imports anything beyond the standard library: every other module may import it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

__all__ = [
    "ConvergenceWarning",
    "DataNamespaceError",
    "DataTypeError",
    "InvalidParameterError",
    "NotFittedError",
    "sklearn_compatible",
]


# -- exceptions and warnings, joined to scikit-learn's without importing it ------------------
# kmeans_xp never imports scikit-learn (importing ``sklearn.exceptions`` runs sklearn/__init__,
# which imports scikit-learn's base, utils and SciPy: 1.0-2.4 s on the 2-core dev machine,
# 20-45x ``import kmeans_xp`` measured in the same processes).
# Instead:
# - when scikit-learn is already imported as kmeans_xp is, the classes below derive from its
#   classes of the same role directly;
# - otherwise they stand alone, and whatever kmeans_xp raises once scikit-learn has been
#   imported (by anyone) is an instance of a "twin" class deriving from both ours and
#   scikit-learn's (``_PeerMeta.__call__``), so ``except`` clauses of either library catch it.
#   Warnings pass the class itself to the filters, so warning sites pass
#   ``sklearn_compatible(ConvergenceWarning)`` to ``warnings.warn``.
_SKLEARN_PEERS = {
    "NotFittedError": ("sklearn.exceptions", "NotFittedError"),
    "ConvergenceWarning": ("sklearn.exceptions", "ConvergenceWarning"),
    "InvalidParameterError": ("sklearn.utils._param_validation", "InvalidParameterError"),
}
_TWINS: dict = {}


def _sklearn_peer(name: str) -> type | None:
    """scikit-learn's class for the role ``name`` if scikit-learn is imported (never imports)."""
    where = _SKLEARN_PEERS.get(name)
    if where is None:
        return None
    module = sys.modules.get(where[0])
    peer = getattr(module, where[1], None) if module is not None else None
    return peer if isinstance(peer, type) else None


def _bases(name: str, *default: type) -> tuple:
    peer = _sklearn_peer(name)
    return (peer,) if peer is not None else default


def sklearn_compatible(cls: type) -> type:
    """``cls``, or a subclass of ``cls`` and of scikit-learn's class of the same role.

    The subclass exists only once scikit-learn has been imported (by the user, a pipeline,
    ``check_estimator``); it is made once and reused, and keeps ``cls``'s name and module.
    """
    peer = _sklearn_peer(cls.__name__) if cls.__module__ == __name__ else None
    if peer is None or issubclass(cls, peer):
        return cls
    twin = _TWINS.get(cls)
    if twin is None:
        meta: type = type(cls)  # its metaclass, _PeerMeta
        twin = _TWINS[cls] = meta(
            cls.__name__,
            (cls, peer),
            {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
                # pickled as ``cls`` (the twin is not a module attribute): joblib workers
                # send exceptions back to the parent by pickle
                "__reduce__": lambda self: (_remake, (cls, self.args), self.__dict__ or None),
            },
        )
    return twin


def _remake(cls: type, args: tuple) -> BaseException:
    return cls(*args)  # the twin again where scikit-learn is imported


class _PeerMeta(type):
    """Instantiating one of our exceptions makes the scikit-learn-compatible twin."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(sklearn_compatible(cls), *args, **kwargs)


class DataTypeError(TypeError, ValueError):
    """The data has a dtype that cannot be clustered (complex, strings, objects)."""


class DataNamespaceError(ValueError, TypeError):
    """The data lives in another namespace or on another device than the fitted model."""


if TYPE_CHECKING:
    # mypy cannot follow bases computed at import (``_bases``): it is shown the bases the
    # classes have without scikit-learn, which scikit-learn's classes of the same roles
    # derive from too
    class InvalidParameterError(ValueError, TypeError):
        # set on the errors of the parameter rules (``_validation.parameter_error``)
        param: str
        owner: str
        expected: str

    class NotFittedError(ValueError, AttributeError): ...

    class ConvergenceWarning(UserWarning): ...

else:

    class InvalidParameterError(
        *_bases("InvalidParameterError", ValueError, TypeError), metaclass=_PeerMeta
    ):
        """A constructor parameter or argument has a wrong type or value.

        It derives from both ``ValueError`` and ``TypeError`` (as scikit-learn's class of the
        same name does), so code written against either keeps working; where scikit-learn is
        imported, what kmeans_xp raises is also an instance of scikit-learn's class.
        """

    class NotFittedError(
        *_bases("NotFittedError", ValueError, AttributeError), metaclass=_PeerMeta
    ):
        """The estimator is used before ``fit``.

        A ``ValueError`` and an ``AttributeError``; where scikit-learn is imported, what
        kmeans_xp raises is also a ``sklearn.exceptions.NotFittedError``.
        """

    class ConvergenceWarning(*_bases("ConvergenceWarning", UserWarning), metaclass=_PeerMeta):
        """The clustering is degenerate (fewer distinct clusters than asked for).

        Where scikit-learn is imported, the warnings kmeans_xp emits are also scikit-learn's
        ``ConvergenceWarning`` (its filters and ``pytest.warns`` see them).
        """
