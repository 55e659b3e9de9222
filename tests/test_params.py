"""The parameter table (kmeans_xp._validation.PARAMETERS): one rule per parameter name, shared
by the estimators, the functions and the CLI; messages name the parameter, its owner (the
function or class the user called) and the cause."""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import pytest

from kmeans_xp import (
    BatchedKMeans,
    InvalidParameterError,
    KMeans,
    MiniBatchKMeans,
    batched_k_means,
    k_means,
    kmeans_plusplus,
)
from kmeans_xp._validation import BATCHED_PARAMETERS, PARAMETERS, validate_params

X = np.random.default_rng(0).normal(size=(40, 3))
XB = np.random.default_rng(1).normal(size=(2, 30, 3))

# (name, bad value, the phrase after "must be")
BAD = [
    ("n_clusters", 0, "an int in the range [1, inf)"),
    ("init", "kmeans++", "a str among {'k-means++', 'k-means||', 'random'}, a callable"),
    ("n_init", "often", "'auto' or an int in the range [1, inf)"),
    ("max_iter", 2.5, "an int in the range [1, inf)"),
    ("tol", -1e-3, "a float in the range [0.0, inf)"),
    ("random_state", -1, "an int in [0, 2**32 - 1], a numpy RandomState or Generator"),
    ("chunk_size", 0, "an int in the range [1, inf) or None"),
]


@pytest.mark.parametrize(
    "name,value,expected",
    BAD
    + [
        ("metric", "chebyshev", "a str among {'euclidean', 'cosine', 'manhattan'}"),
        ("precision", "fp8", "a str among {'exact', 'tf32', 'bf16'}"),
        ("return_n_iter", "yes", "a bool"),
        ("oversampling_factor", 0.0, "a float in the range (0.0, inf)"),
    ],
)
def test_k_means_errors_name_k_means(name, value, expected):
    """k_means used to report its parameters as those of KMeans (the class it delegates to)."""
    kwargs = {"n_clusters": 2, name: value}
    with pytest.raises(InvalidParameterError) as err:
        k_means(X, **kwargs)
    assert str(err.value).startswith(f"The '{name}' parameter of k_means must be {expected}")
    assert "KMeans" not in str(err.value)


@pytest.mark.parametrize("name,value,expected", BAD)
@pytest.mark.parametrize("owner", ["KMeans", "MiniBatchKMeans", "BatchedKMeans", "batched_k_means"])
def test_messages_name_the_parameter_the_owner_and_the_cause(owner, name, value, expected):
    if owner == "KMeans":
        call = lambda p: KMeans(**p).fit(X)  # noqa: E731
    elif owner == "MiniBatchKMeans":
        call = lambda p: MiniBatchKMeans(**p).fit(X)  # noqa: E731
    elif owner == "BatchedKMeans":
        call = lambda p: BatchedKMeans(**p).fit(XB)  # noqa: E731
    else:
        call = lambda p: batched_k_means(XB, **p)  # noqa: E731
    if owner in ("BatchedKMeans", "batched_k_means") and name == "init":
        expected = "a str among {'k-means++', 'random'} or an array of shape (n_problems,"
    if owner in ("BatchedKMeans", "batched_k_means") and name == "random_state":
        value = "seed"  # (a negative int is checked per problem, with the data)
    params = {"n_clusters": 2, name: value}
    with pytest.raises(InvalidParameterError) as err:
        call(params)
    message = str(err.value)
    assert message.startswith(f"The '{name}' parameter of {owner} must be {expected}"), message
    assert f"Got {value!r} instead." in message


def test_minibatch_parameters():
    for name, value, expected in [
        ("batch_size", 0, "an int in the range [1, inf)"),
        ("compute_labels", "yes", "an instance of 'bool' or an instance of 'numpy.bool'"),
        ("max_no_improvement", -1, "an int in the range [0, inf) or None"),
        ("init_size", 0, "an int in the range [1, inf) or None"),
        ("reassignment_ratio", -0.1, "a float in the range [0.0, inf)"),
    ]:
        with pytest.raises(InvalidParameterError) as err:
            MiniBatchKMeans(2, **{name: value}).fit(X)
        assert str(err.value).startswith(
            f"The '{name}' parameter of MiniBatchKMeans must be {expected}. Got {value!r}"
        )


def test_kmeans_plusplus_parameters():
    with pytest.raises(
        InvalidParameterError, match=r"'n_local_trials' parameter of kmeans_plusplus must be"
    ):
        kmeans_plusplus(X, 2, n_local_trials=0)
    with pytest.raises(
        InvalidParameterError, match=r"'random_state' parameter of kmeans_plusplus must be"
    ):
        kmeans_plusplus(X, 2, random_state="seed")


def _function_params(f, skip=("X", "sample_weight", "mask", "x_squared_norms")):
    return [p for p in inspect.signature(f).parameters if p not in skip]


@pytest.mark.parametrize(
    "names,table",
    [
        (list(KMeans().get_params()), PARAMETERS),
        (list(MiniBatchKMeans().get_params()), PARAMETERS),
        (_function_params(k_means), PARAMETERS),
        (_function_params(kmeans_plusplus), PARAMETERS),
        (list(BatchedKMeans().get_params()), BATCHED_PARAMETERS),
        (_function_params(batched_k_means), BATCHED_PARAMETERS),
    ],
    ids=[
        "KMeans",
        "MiniBatchKMeans",
        "k_means",
        "kmeans_plusplus",
        "BatchedKMeans",
        "batched_k_means",
    ],
)
def test_every_parameter_has_a_rule(names, table):
    assert not [n for n in names if n not in table]


def test_validated_values_are_normalised():
    got = validate_params(
        {
            "n_clusters": np.int64(3),
            "tol": np.float32(0.5),
            "copy_x": np.bool_(True),
            "chunk_size": None,
            "n_init": "auto",
            "verbose": True,
            "max_no_improvement": np.int8(0),
        },
        "test",
    )
    assert got == {
        "n_clusters": 3,
        "tol": 0.5,
        "copy_x": True,
        "chunk_size": None,
        "n_init": "auto",
        "verbose": 1,
        "max_no_improvement": 0,
    }
    assert [type(v) for v in got.values()] == [int, float, bool, type(None), str, int, int]


def test_names_without_a_rule_pass_and_the_first_bad_value_is_reported():
    assert validate_params({"no_such": object}, "test") == {"no_such": object}
    with pytest.raises(InvalidParameterError, match="'max_iter'"):
        validate_params({"n_clusters": 2, "max_iter": 0, "tol": -1.0}, "test")


def test_error_says_its_parts_and_pickles():
    with pytest.raises(InvalidParameterError) as err:
        validate_params({"tol": float("nan")}, "KMeans")
    exc = err.value
    assert (exc.param, exc.owner, exc.expected) == (
        "tol",
        "KMeans",
        "a float in the range [0.0, inf)",
    )
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc) and again.param == "tol"
    assert isinstance(exc, ValueError) and isinstance(exc, TypeError)
