"""Training: fit, split and score classifiers, and register the result."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from data.dataset import Dataset
from data.encoding import category_lists, encode_table
from models.registry import Decision, Registry, VersionMetadata

logger = logging.getLogger(__name__)

N_ESTIMATORS = 100
"""Trees per random forest."""


def train_classifier(
    features: pd.DataFrame | np.ndarray,
    labels: Any,
    seed: int = 7,
    categorical: Sequence[int] = (),
) -> RandomForestClassifier | Pipeline:
    """Fit a random forest of :data:`N_ESTIMATORS` trees, in a pipeline when the data needs one.

    The model is fitted on a plain float64 array (a DataFrame's columns in their
    order), so it predicts from arrays whose columns follow the same order: the
    feature matrix of `data.encoding`, categories as codes and NaN where a value is
    missing. Numeric data without a missing value gives a bare forest (as every
    version before categorical features). Otherwise the forest follows a
    ``ColumnTransformer``: numeric columns through ``SimpleImputer(strategy="median")``,
    categorical columns (codes) one-hot encoded with ``handle_unknown="ignore"``, so
    a code the training never saw (an unseen category) encodes as no category, and a
    missing category (NaN) is a category of its own when the training saw one.

    Parameters
    ----------
    features : pandas.DataFrame or numpy.ndarray
        Shape ``(rows, n_features)``: numbers, NaN where missing, no infinity.
    labels : array-like
        One label per row.
    seed : int, default 7
        The forest's ``random_state``; the same seed and data give the same model.
    categorical : sequence of int, default ()
        Column indices of the categorical features (their values are codes).

    Returns
    -------
    sklearn.ensemble.RandomForestClassifier or sklearn.pipeline.Pipeline
        The fitted model.

    Raises
    ------
    ValueError
        If ``features`` is not 2-D or is empty, holds an infinity, ``labels`` does not
        match its rows, or a categorical index is out of range.
    """
    x = _as_matrix(features, "features")
    y = np.asarray(labels)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must hold one label per row ({x.shape[0]}), got shape {y.shape}")
    picked = sorted(set(int(i) for i in categorical))
    if picked and not 0 <= picked[0] <= picked[-1] < x.shape[1]:
        raise ValueError(f"categorical indices must be columns of features, got {picked}")
    forest = RandomForestClassifier(n_estimators=N_ESTIMATORS, random_state=seed)
    if not picked and not np.isnan(x).any():
        forest.fit(x, y)
        return forest
    numeric = [i for i in range(x.shape[1]) if i not in picked]
    prepare = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
                picked,
            ),
        ]
    )
    pipeline = Pipeline([("prepare", prepare), ("forest", forest)])
    pipeline.fit(x, y)
    return pipeline


def evaluate(estimator: Any, features: pd.DataFrame | np.ndarray, labels: Any) -> dict[str, float]:
    """Score a classifier: ``accuracy`` and ``f1_macro``.

    Parameters
    ----------
    estimator : Any
        A fitted classifier; it is given ``features`` as a float64 array.
    features : pandas.DataFrame or numpy.ndarray
        Columns in the order the estimator was fitted on.
    labels : array-like
        True labels.

    Returns
    -------
    dict of str to float
        ``{"accuracy": ..., "f1_macro": ...}``.
    """
    x = _as_matrix(features, "features")
    return scores(labels, estimator.predict(x))


def scores(labels: Any, predicted: Any) -> dict[str, float]:
    """``accuracy`` and ``f1_macro`` of predicted labels against the true ones."""
    y = np.asarray(labels)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro", zero_division=0)),
    }


def split(
    features: pd.DataFrame | np.ndarray,
    labels: Any,
    test_size: float = 0.2,
    seed: int = 7,
) -> tuple[Any, Any, Any, Any]:
    """Shuffle and split into training and held-out parts, stratified when possible.

    Stratifies by label when every class has at least two rows and both parts are
    large enough to hold every class; otherwise splits without stratifying.

    Parameters
    ----------
    features : pandas.DataFrame or numpy.ndarray
        Rows to split; the parts keep the input's type.
    labels : array-like
        One label per row.
    test_size : float, default 0.2
        Fraction of rows held out, strictly between 0 and 1.
    seed : int, default 7
        Seed of the shuffle.

    Returns
    -------
    tuple
        ``(X_train, X_test, y_train, y_test)``.

    Raises
    ------
    ValueError
        If ``test_size`` is not strictly between 0 and 1, or there are fewer than 2 rows.

    Examples
    --------
    >>> x = np.arange(20.0).reshape(10, 2)
    >>> x_train, x_test, y_train, y_test = split(x, [0, 1] * 5, test_size=0.2)
    >>> x_train.shape, x_test.shape, sorted(y_test)
    ((8, 2), (2, 2), [0, 1])
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be strictly between 0 and 1, got {test_size}")
    rows = len(features)
    if rows < 2:
        raise ValueError(f"features must have at least 2 rows to split, got {rows}")
    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    n_test = int(np.ceil(test_size * rows))
    # train_test_split refuses to stratify unless both parts can hold every class.
    can_stratify = counts.min() >= 2 and min(n_test, rows - n_test) >= len(classes)
    stratify = y if can_stratify else None
    if not can_stratify:
        logger.debug("split without stratifying rows=%d classes=%d", rows, len(classes))
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=test_size, random_state=seed, stratify=stratify
    )
    return x_train, x_test, y_train, y_test


def train_and_register(
    registry: Registry, dataset: Dataset, seed: int = 7, cause: str | None = None
) -> VersionMetadata:
    """Train on a data set, score on a held-out split and register the model.

    The reference data is the training split's features, categorical ones as codes
    into their sorted categories (the version's ``categories``). The first version of a
    model is registered as ``initial`` and promoted to champion; later ones are
    registered as ``registered``, with the champion as parent, and not promoted.

    Parameters
    ----------
    registry : Registry
        Where to register.
    dataset : Dataset
        The labelled data.
    seed : int, default 7
        Seed of the split and the forest.
    cause : str, optional
        Why the model was trained; defaults to ``initial training from <path>`` or
        ``training from <path>``.

    Returns
    -------
    VersionMetadata
        The new version's metadata.
    """
    x_train, x_test, y_train, y_test = split(dataset.features, dataset.labels, seed=seed)
    # The reference's categories, as codes: what the consumer's decoder maps strings to.
    categories = category_lists(x_train, dataset.categorical)
    train = encode_table(x_train, dataset.feature_names, categories)
    indices = [dataset.feature_names.index(name) for name in dataset.categorical]
    estimator = train_classifier(train, y_train, seed=seed, categorical=indices)
    metrics = evaluate(estimator, encode_table(x_test, dataset.feature_names, categories), y_test)
    champion = registry.champion_version()
    decision: Decision = "initial" if champion is None else "registered"
    if cause is None:
        verb = "initial training" if champion is None else "training"
        cause = f"{verb} from {dataset.path}"
    metadata = registry.register(
        estimator,
        train,
        feature_names=dataset.feature_names,
        categories=categories,
        label_column=dataset.label_column,
        training_data_sha256=dataset.sha256,
        metrics=metrics,
        cause=cause,
        decision=decision,
        parent_version=champion,
        training_rows=len(x_train),
    )
    if champion is None:
        registry.promote(metadata.version, by="training", reason=cause)
    return metadata


def _as_matrix(features: pd.DataFrame | np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty 2-D table, got shape {matrix.shape}")
    if np.isinf(matrix).any():
        raise ValueError(f"{name} must not hold infinite values")
    return matrix
