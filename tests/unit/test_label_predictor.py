"""Forest labels from label_predictor equal RandomForestClassifier.predict, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from models.prediction import label_predictor


@pytest.mark.parametrize("seed", range(5))
def test_forest_labels_equal_predict(seed: int) -> None:
    x, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=25, max_depth=3, random_state=seed).fit(x, y)
    predict = label_predictor(forest, x)
    assert predict is not forest.predict
    rng = np.random.default_rng(seed)
    rows = np.vstack([x + rng.normal(0, 1, x.shape), np.round(x, 0), x + 3.0])
    np.testing.assert_array_equal(predict(rows), forest.predict(rows))


def test_other_estimators_and_odd_input_use_predict_itself() -> None:
    x, y = load_iris(return_X_y=True)
    linear = LogisticRegression(max_iter=500).fit(x, y)
    assert (label_predictor(linear, x)(x) == linear.predict(x)).all()
    # Beyond float32's range, a tree is asked with the value clipped, not refused.
    tree = DecisionTreeClassifier(random_state=0).fit(x, y)
    huge = np.full((1, 4), 1e300)
    assert label_predictor(tree, x)(huge).tolist() == tree.predict(np.full((1, 4), 3e38)).tolist()
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    predict = label_predictor(forest, x)
    with pytest.raises(ValueError):
        predict(x[:, :3])
