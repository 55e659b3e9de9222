"""scikit-learn interoperability, with scikit-learn as an optional peer and never a dependency.

- ``check_estimator``: every scikit-learn estimator check on ``KMeans`` (the default
  instance, the small one scikit-learn's own suite uses, and the cosine and Manhattan
  metrics), with the expected failures below,
  each with its reason (the same list is in the README);
- exceptions and warnings: ours are caught by scikit-learn's classes, in every import order,
  and ``import kmeans_xp`` imports neither scikit-learn nor SciPy (subprocesses, one of them
  with scikit-learn hidden by a meta-path blocker);
- ``set_output`` and the global ``transform_output``;
- feature names and data errors, compared with the messages of scikit-learn's own KMeans.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

from sklearn.base import clone  # noqa: E402
from sklearn.cluster import KMeans as SKKMeans  # noqa: E402
from sklearn.exceptions import ConvergenceWarning as SKConvergenceWarning  # noqa: E402
from sklearn.exceptions import NotFittedError as SKNotFittedError  # noqa: E402
from sklearn.utils._param_validation import (  # noqa: E402
    InvalidParameterError as SKInvalidParameterError,
)
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from kmeans_xp import ConvergenceWarning, InvalidParameterError, KMeans, NotFittedError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _accepts_sparse() -> bool:
    sp = pytest.importorskip("scipy.sparse")
    try:
        KMeans(n_clusters=1, n_init=1).fit(sp.csr_matrix(np.eye(3)))
    except (TypeError, ValueError):
        return False
    return True


# -- check_estimator -----------------------------------------------------------------------
#: Checks KMeans is expected to fail, with the reason. The README lists the same ones.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight is not equivalent to removing/repeating samples: k-means++ draws "
        "its candidates from a different random stream for weighted and for repeated "
        "data, so the local optimum differs. scikit-learn's own KMeans lists the same "
        "expected failure (sklearn/utils/_test_common/instance_generator.py)."),
    "check_sample_weight_equivalence_on_sparse_data": (
        "as check_sample_weight_equivalence_on_dense_data (run only once sparse input is "
        "supported; scikit-learn's KMeans lists it too)."),
}


def _expected_failed_checks(estimator) -> dict:
    return EXPECTED_FAILED_CHECKS


with warnings.catch_warnings():
    # "KMeans does not inherit from sklearn.base.BaseEstimator": by design, it cannot
    warnings.filterwarnings("ignore", message=".*does not inherit from")
    _CHECKS = parametrize_with_checks(
        [KMeans(), KMeans(n_init=2, n_clusters=2, max_iter=5), KMeans(metric="cosine"),
         KMeans(metric="manhattan")],
        expected_failed_checks=_expected_failed_checks,
    )


@_CHECKS
def test_check_estimator(estimator, check):
    """scikit-learn's estimator checks (array-API checks: see the subprocess test below)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SKConvergenceWarning)
        check(estimator)


def test_check_estimator_only_expected_failures_are_skipped():
    """The expected failures are the ones scikit-learn's own KMeans has, nothing more."""
    from sklearn.utils._test_common.instance_generator import PER_ESTIMATOR_XFAIL_CHECKS

    assert set(EXPECTED_FAILED_CHECKS) <= set(PER_ESTIMATOR_XFAIL_CHECKS[SKKMeans])


def test_check_estimator_array_api_checks():
    """check_array_api_input / _mixed_inputs / _same_namespace: they need SCIPY_ARRAY_API=1
    before SciPy is imported, so they run in a subprocess (NumPy, array-api-strict, torch
    CPU here; CuPy and torch CUDA where present)."""
    pytest.importorskip("array_api_strict")
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("ignore")
        from sklearn.utils.estimator_checks import check_estimator
        from kmeans_xp import KMeans
        res = [r for r in check_estimator(KMeans(n_clusters=3), on_fail=None)
               if r["check_name"].startswith("check_array_api")]
        ran = [r for r in res if r["status"] == "passed"]
        bad = [(r["check_name"], repr(r["exception"])[:300]) for r in res
               if r["status"] == "failed"]
        print(len(ran), bad)
    """)
    out = _run(code, env_extra={"SCIPY_ARRAY_API": "1"})
    n_ran, bad = out.split(" ", 1)
    assert bad.strip() == "[]", bad
    assert int(n_ran) >= 3  # at least array-api-strict and the same-namespace check ran


# -- exceptions and warnings -----------------------------------------------------------------
def _run(code: str, env_extra: dict | None = None) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


BLOCK_SKLEARN = textwrap.dedent("""
    import sys
    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name == "sklearn" or name.startswith("sklearn."):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
            return None
    sys.meta_path.insert(0, _Blocker())
""")


def test_without_sklearn_classes_stand_alone_and_everything_works():
    code = BLOCK_SKLEARN + textwrap.dedent("""
        import warnings
        import numpy as np
        import kmeans_xp
        from kmeans_xp import KMeans, NotFittedError, ConvergenceWarning, InvalidParameterError
        try:
            import sklearn
        except ModuleNotFoundError:
            pass
        else:
            raise AssertionError("the blocker did not hide scikit-learn")
        assert NotFittedError.__mro__[1:3] == (ValueError, AttributeError)
        assert ConvergenceWarning.__mro__[1] is UserWarning
        assert issubclass(InvalidParameterError, ValueError)
        assert issubclass(InvalidParameterError, TypeError)
        try:
            KMeans().predict(np.zeros((2, 2)))
        except NotFittedError as exc:
            assert type(exc) is NotFittedError and isinstance(exc, AttributeError)
        try:
            KMeans(n_clusters=0).fit(np.zeros((2, 2)))
        except InvalidParameterError as exc:
            assert type(exc) is InvalidParameterError
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            KMeans(3, n_init=1, random_state=0).fit(np.zeros((5, 2)))
        assert [x.category for x in w] == [ConvergenceWarning], w
        # set_output without scikit-learn: pandas output, and no global setting to read
        import pandas as pd
        X = np.random.RandomState(0).normal(size=(20, 2))
        km = KMeans(2, random_state=0).set_output(transform="pandas")
        Xt = km.fit_transform(pd.DataFrame(X, columns=["a", "b"]))
        assert list(Xt.columns) == ["kmeans0", "kmeans1"]
        assert isinstance(KMeans(2, random_state=0).fit_transform(X), np.ndarray)
        assert "sklearn" not in sys.modules
        print("ok")
    """)
    assert _run(code) == "ok"


def test_import_kmeans_xp_imports_neither_sklearn_nor_scipy():
    """Neither at import nor in a fit; scipy only where the optional numba kernel runs
    (numba's BLAS products call scipy's): that path is switched off here and checked
    below."""
    code = textwrap.dedent("""
        import sys, warnings
        import numpy as np
        import kmeans_xp
        assert not {"sklearn", "scipy"} & set(sys.modules)
        from kmeans_xp import KMeans
        X = np.random.RandomState(0).normal(size=(30, 3))
        km = KMeans(3, random_state=0).fit(X)
        km.predict(X); km.transform(X); km.score(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            KMeans(3, n_init=1).fit(np.zeros((5, 2)))  # emits a ConvergenceWarning
        try:
            KMeans().predict(X)
        except kmeans_xp.NotFittedError:
            pass
        print(sorted(m for m in ("sklearn", "scipy") if m in sys.modules))
    """)
    assert _run(code, {"KMEANS_XP_KERNELS": "generic"}) == "[]"
    if importlib.util.find_spec("numba") is not None:  # the fused CPU kernel: no sklearn
        assert _run(code) in ("[]", "['scipy']")


def test_sklearn_imported_first_makes_real_subclasses():
    code = textwrap.dedent("""
        import sklearn.exceptions as se
        from sklearn.utils._param_validation import InvalidParameterError as SKI
        import kmeans_xp
        assert issubclass(kmeans_xp.NotFittedError, se.NotFittedError)
        assert issubclass(kmeans_xp.ConvergenceWarning, se.ConvergenceWarning)
        assert issubclass(kmeans_xp.InvalidParameterError, SKI)
        print("ok")
    """)
    assert _run(code) == "ok"


def test_sklearn_imported_after_kmeans_xp_catches_what_we_raise():
    """kmeans_xp imported before scikit-learn (a fresh process): what it raises and warns
    from then on is caught by scikit-learn's classes and by ours."""
    code = textwrap.dedent("""
        import warnings
        import numpy as np
        import kmeans_xp
        from kmeans_xp import KMeans
        import sklearn.exceptions as se
        from sklearn.utils._param_validation import InvalidParameterError as SKI
        try:
            KMeans().predict(np.zeros((2, 2)))
        except se.NotFittedError as exc:
            assert isinstance(exc, kmeans_xp.NotFittedError)
            assert type(exc).__name__ == "NotFittedError"
            import pickle  # joblib sends worker exceptions back by pickle
            again = pickle.loads(pickle.dumps(exc))
            assert isinstance(again, se.NotFittedError) and str(again) == str(exc)
        try:
            KMeans(n_clusters="3").fit(np.zeros((5, 2)))
        except SKI as exc:
            assert isinstance(exc, kmeans_xp.InvalidParameterError)
        with warnings.catch_warnings():
            warnings.simplefilter("error", se.ConvergenceWarning)
            try:
                KMeans(3, n_init=1, random_state=0).fit(np.zeros((5, 2)))
            except se.ConvergenceWarning as w:
                assert isinstance(w, kmeans_xp.ConvergenceWarning)
            else:
                raise AssertionError("scikit-learn's warning filter missed our warning")
        print("ok")
    """)
    assert _run(code) == "ok"


def test_exceptions_caught_by_sklearn_classes_in_this_process():
    X = np.random.RandomState(0).normal(size=(20, 2))
    with pytest.raises(SKNotFittedError, match="not fitted yet"):
        KMeans().transform(X)
    with pytest.raises(NotFittedError):
        KMeans().score(X)
    with pytest.raises(SKInvalidParameterError):
        KMeans(max_iter=0).fit(X)
    with pytest.raises(InvalidParameterError):
        KMeans(max_iter=0).fit(X)
    with pytest.warns(SKConvergenceWarning, match="Number of distinct clusters"):
        KMeans(3, n_init=1).fit(np.zeros((5, 2)))
    with pytest.warns(ConvergenceWarning):
        KMeans(3, n_init=1).fit(np.zeros((5, 2)))
    from sklearn.utils.validation import check_is_fitted

    with pytest.raises(SKNotFittedError):
        check_is_fitted(KMeans())
    check_is_fitted(KMeans(2).fit(X))


# -- set_output --------------------------------------------------------------------------------
def _frame(n=40, seed=0):
    rng = np.random.RandomState(seed)
    X = np.concatenate([rng.normal(size=(n // 2, 3)), rng.normal(5, 1, size=(n // 2, 3))])
    return pd.DataFrame(X, columns=["a", "b", "c"], index=[f"r{i}" for i in range(n)])


def test_set_output_pandas_matches_default_output():
    df = _frame()
    km = KMeans(2, random_state=0)
    D = km.fit_transform(df)
    assert isinstance(D, np.ndarray)
    out = clone(km).set_output(transform="pandas")
    Dp = out.fit_transform(df)
    assert isinstance(Dp, pd.DataFrame)
    assert list(Dp.columns) == ["kmeans0", "kmeans1"] == list(out.get_feature_names_out())
    assert list(Dp.index) == list(df.index)
    np.testing.assert_array_equal(Dp.to_numpy(), D)
    np.testing.assert_array_equal(out.transform(df).to_numpy(), km.transform(df))
    # a bare array in: a DataFrame with a default index
    Db = out.transform(df.to_numpy())
    assert isinstance(Db, pd.DataFrame) and list(Db.index) == list(range(len(df)))
    # the choice survives clone (scikit-learn copies _sklearn_output_config)
    assert isinstance(clone(out).fit(df).transform(df), pd.DataFrame)
    # "default" goes back to arrays; None leaves the setting unchanged
    assert isinstance(out.set_output(transform=None).transform(df), pd.DataFrame)
    assert isinstance(out.set_output(transform="default").transform(df), np.ndarray)
    with pytest.raises(ValueError, match="output config must be in"):
        KMeans().set_output(transform="arrow")


def test_global_transform_output_is_honoured():
    df = _frame()
    km = KMeans(2, random_state=0).fit(df)
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(km.transform(df), pd.DataFrame)
        # the estimator's own setting wins over the global one, as in scikit-learn
        assert isinstance(clone(km).set_output(transform="default").fit_transform(df),
                          np.ndarray)
    assert isinstance(km.transform(df), np.ndarray)


def test_pipeline_set_output_and_column_transformer():
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = _frame()
    pipe = make_pipeline(StandardScaler(), KMeans(2, random_state=0)).set_output(
        transform="pandas")
    out = pipe.fit_transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["kmeans0", "kmeans1"]
    assert list(pipe.get_feature_names_out()) == ["kmeans0", "kmeans1"]
    # the same distances as scikit-learn's KMeans from the same initial centres
    scaled = StandardScaler().fit_transform(df)
    init = scaled[[0, -1]]
    ours = make_pipeline(StandardScaler(), KMeans(2, init=init, n_init=1)).set_output(
        transform="pandas").fit_transform(df)
    ref = SKKMeans(2, init=init, n_init=1).fit_transform(scaled)
    np.testing.assert_allclose(ours.to_numpy(), ref, rtol=1e-10, atol=1e-12)
    ct = ColumnTransformer([("km", KMeans(2, random_state=0), ["a", "b"])]).set_output(
        transform="pandas")
    assert list(ct.fit_transform(df).columns) == ["km__kmeans0", "km__kmeans1"]


def test_set_output_pandas_with_torch_data_is_a_clear_error():
    torch = pytest.importorskip("torch")
    X = torch.asarray(_frame().to_numpy())
    km = KMeans(2, random_state=0).set_output(transform="pandas").fit(X)
    with pytest.raises(ValueError, match="pandas holds host memory"):
        km.transform(X)
    assert isinstance(km.set_output(transform="default").transform(X), torch.Tensor)


def test_set_output_polars():
    pl = pytest.importorskip("polars")
    df = _frame()
    km = KMeans(2, random_state=0).set_output(transform="polars")
    out = km.fit_transform(df)
    assert isinstance(out, pl.DataFrame) and out.columns == ["kmeans0", "kmeans1"]
    np.testing.assert_array_equal(out.to_numpy(), clone(km).set_output(
        transform="default").fit_transform(df))
    # a polars frame in: its string columns are the feature names
    kp = KMeans(2, random_state=0).fit(pl.from_pandas(df))
    assert list(kp.feature_names_in_) == ["a", "b", "c"]


def test_get_feature_names_out_checks_input_features():
    df = _frame()
    km = KMeans(3, random_state=0).fit(df)
    assert list(km.get_feature_names_out(["a", "b", "c"])) == ["kmeans0", "kmeans1", "kmeans2"]
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        km.get_feature_names_out(["a", "c", "b"])
    kn = KMeans(3, random_state=0).fit(df.to_numpy())
    with pytest.raises(ValueError, match=r"should have length equal to number of features \(3\)"):
        kn.get_feature_names_out(["x0", "x1"])
    with pytest.raises(NotFittedError):
        KMeans().get_feature_names_out()


# -- feature names: our messages are scikit-learn's --------------------------------------------
def _both_messages(fit_X, call, X):
    """What scikit-learn's KMeans and ours say (error or warnings) for the same calls."""
    out = []
    for Est in (SKKMeans, KMeans):
        km = Est(2, random_state=0, n_init=1).fit(fit_X)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            try:
                getattr(km, call)(X)
                err = None
            except Exception as exc:  # noqa: BLE001 - compared below
                err = (type(exc), str(exc))
        out.append((err, [(w.category, str(w.message)) for w in rec
                          if issubclass(w.category, UserWarning)]))
    return out


@pytest.mark.parametrize("call", ["predict", "transform", "score"])
def test_bare_array_after_dataframe_warns_like_sklearn(call):
    df = _frame()
    (sk_err, sk_w), (err, w) = _both_messages(df, call, df.to_numpy())
    assert sk_err is None and err is None
    assert w == [(UserWarning, "X does not have valid feature names, but KMeans was fitted "
                               "with feature names")]
    assert [m for _, m in w] == [m for _, m in sk_w]


def test_dataframe_after_bare_array_warns_like_sklearn():
    df = _frame()
    (_, sk_w), (_, w) = _both_messages(df.to_numpy(), "predict", df)
    assert [m for _, m in w] == [m for _, m in sk_w] == [
        "X has feature names, but KMeans was fitted without feature names"]


@pytest.mark.parametrize("columns", [
    ["a", "b", "d"],                # one unseen, one missing
    ["c", "b", "a"],                # same names, another order
    ["a", "b", "c", "d"],           # an extra column
    ["u", "v", "w"],                # all new
])
def test_feature_name_mismatch_messages_are_sklearns(columns):
    df = _frame()
    X = pd.DataFrame(np.ones((4, len(columns))), columns=columns)
    (sk_err, _), (err, _) = _both_messages(df, "predict", X)
    assert err is not None and issubclass(err[0], ValueError)
    assert err[1] == sk_err[1]


def test_many_unseen_names_are_cut_like_sklearn():
    df = pd.DataFrame(np.ones((6, 8)), columns=[f"f{i}" for i in range(8)])
    X = pd.DataFrame(np.ones((6, 8)), columns=[f"g{i}" for i in range(8)])
    (sk_err, _), (err, _) = _both_messages(df, "predict", X)
    assert err[1] == sk_err[1] and "- ...\n" in err[1]


def test_mixed_column_name_types_are_a_type_error_like_sklearn():
    X = pd.DataFrame(np.ones((6, 2)), columns=["a", 1])
    with pytest.raises(TypeError) as sk:
        SKKMeans(2, n_init=1).fit(X)
    with pytest.raises(TypeError) as ours:
        KMeans(2, n_init=1).fit(X)
    assert str(ours.value) == str(sk.value)
    # integer column names: no feature names, as in scikit-learn
    km = KMeans(2, n_init=1, random_state=0).fit(pd.DataFrame(np.eye(4)))
    assert not hasattr(km, "feature_names_in_")


# -- data errors name the column or the real cause -----------------------------------------
def test_string_column_is_named():
    df = _frame()
    df["city"] = ["Paris"] * 20 + ["Lyon"] * 20
    with pytest.raises(TypeError, match=r"X column 'city' has dtype (object|str) .*'Paris' \(str\) "
                                        r"at index 'r0'"):
        KMeans(2).fit(df)
    df["city"] = df["city"].astype("string")
    with pytest.raises(ValueError, match=r"X column 'city' has dtype string"):
        KMeans(2).fit(df)
    df["city"] = df["city"].astype("category")
    with pytest.raises(TypeError, match=r"X column 'city' has dtype category"):
        KMeans(2).fit(df)


def test_nullable_column_with_na_is_named():
    df = _frame()
    df["n"] = pd.array([1] * 39 + [None], dtype="Int64")
    with pytest.raises(ValueError, match=r"X column 'n' \(dtype Int64\) holds missing values "
                                         r"\(pd.NA\) in 1 row\(s\), first at index \['r39'\]"):
        KMeans(2).fit(df)
    with pytest.raises(ValueError, match=r"column 'n'"):
        KMeans(2).fit(df.iloc[:39]).predict(df)
    # an object column holding pd.NA: the missing value is named
    df["n"] = pd.Series([1.0] * 39 + [pd.NA], index=df.index, dtype=object)
    with pytest.raises(TypeError, match=r"column 'n' .*a missing value \(pd.NA\) at index 'r39'"):
        KMeans(2).fit(df)


def test_nullable_and_numeric_object_columns_without_na_are_numbers():
    df = _frame()
    ref = KMeans(2, random_state=0).fit(df)
    alt = df.copy()
    alt["a"] = alt["a"].astype("Float64")
    alt["b"] = alt["b"].astype(object)
    km = KMeans(2, random_state=0).fit(alt)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
    assert km.cluster_centers_.dtype == np.float64
    ints = pd.DataFrame({"a": pd.array([0, 1, 10, 11], dtype="Int64"),
                         "b": pd.array([True, False, True, False], dtype="boolean")})
    km = KMeans(2, random_state=0).fit(ints)
    np.testing.assert_array_equal(km.predict(ints), KMeans(2, random_state=0).fit_predict(
        np.array([[0, 1], [1, 0], [10, 1], [11, 0]], dtype=float)))


def test_numpy_bool_columns_beside_numbers_are_numbers():
    """pd.get_dummies gives NumPy bool columns next to float ones; DataFrame.to_numpy makes
    such a mix an object array, which was refused as "dtype object" data."""
    df = pd.get_dummies(pd.DataFrame({"x": [0.0, 0.5, 10.0, 10.5, 0.2, 10.1],
                                      "n": [1, 2, 30, 31, 2, 30],
                                      "s": ["u", "v", "u", "v", "u", "v"]}))
    assert {str(t) for t in df.dtypes} == {"float64", "int64", "bool"}
    dense = df.to_numpy(dtype=np.float64)
    km = KMeans(2, random_state=0).fit(df)
    ref = KMeans(2, random_state=0).fit(dense)
    assert km.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
    np.testing.assert_array_equal(km.predict(df), ref.labels_)
    ints = df[["n", "s_u", "s_v"]]  # int and bool columns: the default float, as ints
    np.testing.assert_array_equal(KMeans(2, random_state=0).fit(ints).cluster_centers_,
                                  KMeans(2, random_state=0).fit(dense[:, 1:]).cluster_centers_)


def test_object_array_errors_keep_numpys_reason():
    X = np.ones((6, 2), dtype=object)
    X[3, 1] = {"foo": "bar"}
    with pytest.raises(TypeError, match=r"argument must be .* string.* number.*X\[3, 1\]"):
        KMeans(2).fit(X)


@pytest.mark.parametrize("shape", [(10, 4, 4), (5, 2, 3, 2)])
def test_nd_input_gets_an_nd_message(shape):
    X = np.ones(shape)
    with pytest.raises(ValueError, match=rf"got {len(shape)}D array instead.*KMeans expected "
                                         r"<= 2.*reshape\(X.shape\[0\], -1\)") as exc:
        KMeans(2).fit(X)
    assert "reshape(-1, 1)" not in str(exc.value)
    km = KMeans(2, n_init=1).fit(np.ones((4, 2)) * np.arange(4)[:, None])
    with pytest.raises(ValueError, match=r"got 3D array instead"):
        km.predict(np.ones((2, 2, 1)))


def test_scalar_and_1d_messages():
    with pytest.raises(ValueError, match=r"got scalar array instead"):
        KMeans(2).fit(np.float64(3.0))
    with pytest.raises(ValueError, match=r"got 1D array instead.*reshape\(-1, 1\)"):
        KMeans(2).fit(np.ones(5))


def test_namespace_mismatch_is_a_data_error_not_a_parameter_error():
    torch = pytest.importorskip("torch")
    X = _frame().to_numpy()
    km = KMeans(2, random_state=0).fit(torch.asarray(X))
    for method in ("predict", "transform", "score"):
        with pytest.raises(ValueError, match=rf"Inputs passed to KMeans.{method}\(\) must use "
                                             r"the same namespace") as exc:
            getattr(km, method)(X)
        assert isinstance(exc.value, TypeError)
        assert not isinstance(exc.value, InvalidParameterError)
        assert "numpy" in str(exc.value) and "torch" in str(exc.value)


def test_sparse_input_until_supported_says_sparse():
    sp = pytest.importorskip("scipy.sparse")
    if _accepts_sparse():
        pytest.skip("sparse input is supported: tested by the sparse suite")
    X = sp.csr_matrix(np.eye(4))
    with pytest.raises(TypeError, match=r"Sparse data was passed for X, but dense data is "
                                        r"required"):
        KMeans(2).fit(X)
    km = KMeans(2, n_init=1).fit(np.eye(4))
    with pytest.raises(TypeError, match=r"Sparse data"):
        km.predict(X)
    assert KMeans().__sklearn_tags__().input_tags.sparse is False
