"""Model pipelines: scaling fitted on training data only, then one estimator.

``fit_model`` adds what the config asks for around a pipeline: class balancing, a
choice among column groups, and a hyperparameter search whose inner folds are grouped
by speaker.
"""

from __future__ import annotations

import itertools
import tempfile

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from serflow.features import GROUP_EXTRACTOR
from serflow.models.kinds import _tuples, make_estimator, model_kind


class GroupSelector(TransformerMixin, BaseEstimator):
    """Keep the columns whose group (``column_groups``, one per column) is in ``groups``; all
    of them when ``groups`` is None or holds ``all``. A pipeline step, so a search can choose
    ``groups``."""

    def __init__(self, column_groups=(), groups=None):
        self.column_groups = column_groups
        self.groups = groups

    def fit(self, x, y=None):
        n = np.shape(x)[1]
        if len(self.column_groups) != n:
            raise ValueError(f"{len(self.column_groups)} column groups for {n} columns")
        if self.groups is None or "all" in self.groups:
            self.index_ = np.arange(n)
            return self
        unknown = set(self.groups) - set(GROUP_EXTRACTOR) - set(self.column_groups)
        if unknown:
            raise ValueError(f"unknown feature group(s): {', '.join(sorted(unknown))}")
        wanted = set(self.groups)
        self.index_ = np.array([i for i, g in enumerate(self.column_groups) if g in wanted], dtype=int)
        if not self.index_.size:
            raise ValueError(f"feature groups {list(self.groups)} select no column")
        return self

    def transform(self, x):
        return np.asarray(x)[:, self.index_]


class RowSpace(TransformerMixin, BaseEstimator):
    """Coordinates of rows in the span of the training rows (an orthonormal basis from one SVD).

    For a model whose solution lies in that span (L2-penalised linear models: logistic
    regression, linear SVM), fitting on these at most n_train columns gives the same
    decision function as on all p columns, for every C: with p >> n each fit is cheaper.
    Nothing changes when n_train >= p.
    """

    def fit(self, x, y=None):
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] >= x.shape[1]:
            self.basis_ = None
            return self
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        keep = s > (s[0] if s.size else 0.0) * 1e-10
        keep[0] = True
        self.basis_ = np.ascontiguousarray(vt[keep].T)
        return self

    def transform(self, x):
        x = np.asarray(x, dtype=np.float64)
        return x if self.basis_ is None else x @ self.basis_


def make_pipeline(
    kind: str,
    params: dict | None = None,
    threads: int = 1,
    random_state: int = 0,
    column_groups=None,
    scale: bool = True,
    row_space: bool = False,
    resample: dict | None = None,
) -> Pipeline:
    """StandardScaler then the estimator: fitted together, so test folds never reach the scaler.

    With ``column_groups`` (the group of each column) a ``GroupSelector`` step named
    ``groups`` comes first. ``scale=False`` leaves the features as they are (a recipe that
    fed its model raw features). ``row_space`` adds a ``RowSpace`` step after the scaler.
    ``resample`` ({method, params}) adds a ``resample`` step before the estimator (then an
    imbalanced-learn ``Pipeline``, which resamples only when fitted).
    """
    scaler = StandardScaler() if scale and not model_kind(kind).frames else "passthrough"
    steps = [("scale", scaler), ("model", make_estimator(kind, params, threads, random_state))]
    if row_space:
        steps.insert(1, ("project", RowSpace()))
    if column_groups is not None:
        steps.insert(0, ("groups", GroupSelector(list(column_groups))))
    if resample:
        from imblearn.pipeline import Pipeline as ResamplingPipeline

        from serflow.models.resampling import make_resampler

        steps.insert(len(steps) - 1, ("resample", make_resampler(resample, random_state)))
        return ResamplingPipeline(steps)
    return Pipeline(steps)


def inner_folds(y, groups=None, n_splits: int = 3, random_state: int = 0, sources=None):
    """Folds for a search inside one training set: grouped by speaker when speakers are known.

    ``sources`` (row -> the row of its source clip; its own for a clip) marks augmented
    copies: the folds are made over the clips, each training side then gains the copies of
    its clips, and no copy is ever on a scored side.
    """
    if sources is not None:
        sources = np.asarray(sources)
        clips = np.flatnonzero(sources == np.arange(len(sources)))
        folds = inner_folds(
            np.asarray(y)[clips],
            None if groups is None else np.asarray(groups)[clips],
            n_splits,
            random_state,
        )
        out = []
        for train, test in folds:
            member = np.zeros(len(sources), dtype=bool)
            member[clips[train]] = True
            out.append((np.flatnonzero(member[sources]), clips[test]))
        return out
    if groups is not None:
        n_groups = len(set(groups))
        if n_groups >= 2:
            return list(GroupKFold(n_splits=min(n_splits, n_groups)).split(np.zeros(len(y)), y, groups))
    n = max(2, min(n_splits, int(np.bincount(y).min())))
    return list(
        StratifiedKFold(n_splits=n, shuffle=True, random_state=random_state).split(np.zeros(len(y)), y)
    )


def copy_origin(sources) -> np.ndarray:
    """Row keys that survive subsetting (a search's folds): a clip's own row number, or
    for a copy -1 - its source's row number."""
    sources = np.asarray(sources)
    rows = np.arange(len(sources))
    return np.where(sources == rows, rows, -1 - sources)


def fit_model(
    kind: str,
    x,
    y,
    groups=None,
    params: dict | None = None,
    grid: dict | None = None,
    class_weight: str | None = None,
    threads: int = 1,
    random_state: int = 0,
    inner_splits: int = 3,
    feature_groups=None,
    column_groups=None,
    scale: bool = True,
    resample: dict | None = None,
    sources=None,
):
    """Fit ``make_pipeline(kind, params)`` on (x, y).

    ``class_weight='balanced'`` weights classes inversely to their frequency.
    ``feature_groups`` (a list of lists of group names, with ``column_groups`` giving the
    group of each of x's columns) restricts the columns to one list, chosen in the search when it holds
    several. With a ``grid`` ({parameter: [values]}) or several ``feature_groups``, the
    choice is made by UAR over ``inner_splits`` folds of (x, y) grouped by speaker, then
    refitted on all of it: a ``GridSearchCV`` is returned (``best_params_`` holds the choice).
    ``scale=False`` drops the StandardScaler step. ``resample`` rebalances the classes of
    every training set the pipeline is fitted on (``serflow.models.resampling``).
    ``sources`` marks rows that are augmented copies (see ``inner_folds``).
    """
    params = dict(params or {})
    grid = dict(grid or {})
    if feature_groups and column_groups is None:
        raise ValueError("feature_groups needs column_groups")
    fit_params = {}
    if class_weight:
        mode = model_kind(kind).class_weight
        if mode == "param":
            params["class_weight"] = class_weight
        elif mode == "sample":
            fit_params["model__sample_weight"] = compute_sample_weight(class_weight, y)
        else:
            raise ValueError(f"model {kind!r} takes no class_weight")
    spec = model_kind(kind)
    if spec.fit_groups and groups is not None:
        fit_params["model__groups"] = np.asarray(groups)
    if spec.fit_groups and sources is not None:
        fit_params["model__origin"] = copy_origin(sources)
    candidates = [{**params, **dict(zip(grid, values))} for values in itertools.product(*grid.values())]
    row_space = all(spec.row_space(c) for c in candidates or [params])
    pipeline = make_pipeline(
        kind,
        params,
        threads,
        random_state,
        column_groups if feature_groups else None,
        scale,
        row_space,
        resample,
    )
    choices = [tuple(g) for g in feature_groups or []]
    if len(choices) == 1:
        pipeline.set_params(groups__groups=choices[0])
    if not grid and len(choices) < 2:
        return pipeline.fit(x, y, **fit_params)
    cv = inner_folds(y, groups, inner_splits, random_state, sources)
    # A path search fits the estimator on the transformed rows itself: no resampler between.
    if (
        spec.path is not None
        and list(grid) == [spec.path]
        and len(choices) < 2
        and not (fit_params or resample)
    ):
        return PathSearch(pipeline, spec.prefix + spec.path, grid[spec.path], cv).fit(x, y)
    space = {spec.prefix + k: [_tuples({k: v})[k] for v in values] for k, values in grid.items()}
    if len(choices) > 1:
        space["groups__groups"] = choices
    with tempfile.TemporaryDirectory(prefix="serflow-search-") as cache:
        # The scaler (and projection) of each inner training set is fitted once, then
        # reused by every grid point (scikit-learn's Pipeline memory).
        pipeline.set_params(memory=cache)
        search = GridSearchCV(
            pipeline,
            space,
            scoring="balanced_accuracy",
            cv=cv,
            n_jobs=1,
            error_score="raise",
        )
        search.fit(x, y, **fit_params)
    search.best_estimator_.set_params(memory=None)
    search.estimator.set_params(memory=None)
    return search


class PathSearch:
    """A grid search over one parameter of a pipeline's last step, along a warm-started path.

    In each inner fold the steps before the estimator (selector, scaler, projection) are
    fitted once; the estimator then fits every value in increasing order, each fit
    starting from the previous solution. The value with the best mean UAR over the inner
    folds (the first of the grid's order on ties, as ``GridSearchCV``) is refitted from
    scratch on all of (x, y). Exposes ``best_params_``, ``best_estimator_``,
    ``cv_results_`` and ``predict_proba`` like ``GridSearchCV``.
    """

    def __init__(self, pipeline: Pipeline, param: str, values, cv):
        self.pipeline, self.param, self.values, self.cv = pipeline, param, list(values), cv

    def fit(self, x, y):
        from sklearn.base import clone
        from sklearn.metrics import balanced_accuracy_score

        x, y = np.asarray(x), np.asarray(y)
        name = self.param.split("__")[-1]
        order = sorted(range(len(self.values)), key=lambda i: self.values[i])
        scores = np.zeros((len(self.cv), len(self.values)))
        for f, (train, test) in enumerate(self.cv):
            head = clone(self.pipeline[:-1]).fit(x[train], y[train])
            xt, xv = head.transform(x[train]), head.transform(x[test])
            est = clone(self.pipeline[-1]).set_params(warm_start=True)
            for i in order:
                est.set_params(**{name: self.values[i]}).fit(xt, y[train])
                scores[f, i] = balanced_accuracy_score(y[test], est.predict(xv))
        mean = scores.mean(axis=0)
        best = int(np.flatnonzero(mean == mean.max())[0])
        self.best_params_ = {self.param: self.values[best]}
        self.best_estimator_ = clone(self.pipeline).set_params(**self.best_params_).fit(x, y)
        self.cv_results_ = {
            "params": [{self.param: v} for v in self.values],
            "mean_test_score": mean,
            f"param_{self.param}": list(self.values),
        }
        self.classes_ = self.best_estimator_.classes_
        return self

    def predict_proba(self, x):
        return self.best_estimator_.predict_proba(x)

    def predict(self, x):
        return self.best_estimator_.predict(x)
