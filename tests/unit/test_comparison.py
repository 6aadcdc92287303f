"""The promotion gate's paired test: McNemar's exact test, and held-out rows unseen in training."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from models.comparison import mcnemar_exact, unseen_rows


def test_equal_models_are_not_significant() -> None:
    rng = np.random.default_rng(3)
    correct = rng.random(500) < 0.8
    result = mcnemar_exact(correct, correct)
    assert (result.challenger_only, result.champion_only, result.p_value) == (0, 0, 1.0)


def test_p_value_is_the_one_sided_binomial_of_the_discordant_rows() -> None:
    champion = np.array([True] * 30 + [False] * 12 + [True] * 4 + [False] * 4)
    challenger = np.array([True] * 30 + [True] * 12 + [False] * 4 + [False] * 4)
    result = mcnemar_exact(champion, challenger)
    assert (result.challenger_only, result.champion_only, result.rows) == (12, 4, 50)
    assert result.p_value == binomtest(12, 16, 0.5, alternative="greater").pvalue
    assert result.p_value == pytest.approx(0.0384, abs=1e-4)


def test_a_worse_challenger_has_a_large_p_value() -> None:
    result = mcnemar_exact([True] * 10, [False] * 10)
    assert result.p_value == 1.0


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="champion_correct"):
        mcnemar_exact([True, False], [True])


def test_held_out_copies_of_training_rows_are_left_out() -> None:
    train = np.array([[5.1, 3.5], [4.9, 3.0]])
    held = np.array([[5.1, 3.5], [5.1, 3.5], [4.9, 3.0], [6.0, 3.0]])
    assert unseen_rows(train, [0, 0], held, [0, 1, 0, 0]).tolist() == [False, True, False, True]
