"""Labels from a fitted classifier at the cost of its trees, not of scikit-learn's dispatch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def label_predictor(estimator: Any, reference: np.ndarray) -> Callable[[np.ndarray], Any]:
    """``estimator.predict``, or for a random forest an equal loop that skips joblib.

    ``RandomForestClassifier.predict`` adds up its trees' class probabilities in
    tree order, divides by the number of trees and returns the class with the
    highest mean. It hands each tree to joblib through a wrapper that sets up
    configuration and warning filters and checks the input again; on a poll's
    rows that costs several times what the trees do. The loop returned here does
    the same arithmetic in the same order without the dispatch, so its labels are
    the same, ties included. It is used only for a fitted single-output forest
    trained on a plain array, only on finite input of the trained width (anything
    else goes to ``estimator.predict``, errors included), and only if it gives
    exactly ``estimator.predict``'s labels on ``reference``.

    Parameters
    ----------
    estimator : Any
        A fitted classifier.
    reference : numpy.ndarray
        Rows to check the loop against ``estimator.predict`` on.

    Returns
    -------
    Callable
        Takes a float64 array of shape (rows, features), returns one label per row.
    """
    # Imported here, not with the module: reading this module does not load
    # scikit-learn (loading a model does).
    from sklearn.ensemble import RandomForestClassifier

    if (
        type(estimator) is not RandomForestClassifier
        or getattr(estimator, "n_outputs_", None) != 1
        or hasattr(estimator, "feature_names_in_")
    ):
        return _in_float32_range(estimator.predict)
    # Each tree's predict_proba(X, check_input=False) is its fitted tree_.predict(X)
    # cut to its classes, after checks that cost more than the lookup on a poll's rows.
    trees = [(tree.tree_, tree.n_classes_) for tree in estimator.estimators_]
    classes = estimator.classes_
    n_features = estimator.n_features_in_
    n_classes = estimator.n_classes_

    def predict(x: np.ndarray) -> Any:
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != n_features or not np.isfinite(x).all():
            return estimator.predict(x)
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        proba = np.zeros((x32.shape[0], n_classes), dtype=np.float64)
        for tree, tree_classes in trees:
            proba += tree.predict(x32)[:, :tree_classes]
        proba /= len(trees)
        return classes.take(np.argmax(proba, axis=1), axis=0)

    check = np.asarray(reference, dtype=np.float64)
    if not np.array_equal(predict(check), estimator.predict(check)):
        return _in_float32_range(estimator.predict)
    return predict


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _in_float32_range(predict: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    """``predict`` on rows clipped to float32's range.

    scikit-learn's trees read their input as float32 and refuse a finite float64
    beyond its range (about 3.4e38) as "too large"; clipped, such a value falls on
    the same side of every split as it would unclipped.

    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> tree = DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1])
    >>> _in_float32_range(tree.predict)(np.array([[1e300], [-1e308]])).tolist()
    [1, 0]
    """

    def bounded(x: np.ndarray) -> Any:
        return predict(np.clip(x, -_FLOAT32_MAX, _FLOAT32_MAX))

    return bounded
