"""The producer's replay plan: order, noise from row N on chosen features, repeatability."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from producer.messages import RowMessage
from producer.replay import DriftPlan, Pacer, replay
from producer.settings import ProducerSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)

X = np.arange(30, dtype=float).reshape(10, 3)
NAMES = ["a", "b", "c"]


def rows(**kwargs: object) -> list:
    return list(replay(X, list(range(10)), NAMES, **kwargs))  # type: ignore[arg-type]


def test_one_pass_sends_every_row_once_shuffled() -> None:
    sent = rows(count=10, seed=1)
    assert [r.seq for r in sent] == list(range(10))
    assert sorted(r.label for r in sent) == list(range(10))
    assert [r.label for r in sent] != list(range(10))
    for r in sent:
        assert r.features == dict(zip(NAMES, X[r.label].tolist(), strict=True))


def test_count_beyond_the_data_starts_another_pass() -> None:
    sent = rows(count=25, seed=1)
    assert len(sent) == 25
    assert sorted(r.label for r in sent[:10]) == sorted(r.label for r in sent[10:20])


def test_noise_starts_at_drift_after_and_touches_only_chosen_features() -> None:
    plan = DriftPlan(after=4, mean=3.0, std=1.0, features=("b",))
    sent = rows(count=10, seed=2, drift=plan)
    for r in sent:
        clean = dict(zip(NAMES, X[r.label].tolist(), strict=True))
        assert r.features["a"] == clean["a"]
        assert r.features["c"] == clean["c"]
        assert (r.features["b"] == clean["b"]) == (r.seq < 4)


def test_a_seed_repeats_the_run_exactly() -> None:
    plan = DriftPlan(after=0)
    assert rows(count=20, seed=7, drift=plan) == rows(count=20, seed=7, drift=plan)
    assert rows(count=20, seed=7, drift=plan) != rows(count=20, seed=8, drift=plan)


def test_the_noise_has_the_asked_mean() -> None:
    big = np.zeros((1000, 1))
    sent = list(replay(big, None, ["x"], count=4000, seed=0, drift=DriftPlan(after=0)))
    values = np.array([r.features["x"] for r in sent])
    assert abs(values.mean() - 3.0) < 0.1
    assert abs(values.std() - 1.0) < 0.1


def test_unknown_drift_features_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'z'"):
        rows(count=1, drift=DriftPlan(after=0, features=("z",)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"after": -1}, "drift_after"), ({"std": -1.0}, "noise_std"), ({"features": ()}, "drift")],
)
def test_bad_drift_plans_name_the_parameter(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DriftPlan(**kwargs)


def test_each_row_keeps_its_key_through_shuffles_passes_and_noise() -> None:
    keys = [f"customer-{label % 3}" for label in range(10)]
    sent = list(
        replay(X, list(range(10)), NAMES, count=25, seed=4, drift=DriftPlan(after=5), keys=keys)
    )
    assert [r.key for r in sent] == [keys[r.label] for r in sent]
    assert [r.key for r in sent[:10]] != keys  # shuffled: the keys moved with their rows
    assert {r.key for r in rows(count=25, seed=4)} == {None}


def test_keys_must_match_the_rows() -> None:
    with pytest.raises(ValueError, match="keys has 2 entries for 10 rows"):
        rows(count=1, keys=["a", "b"])


def test_pacer_keeps_a_schedule() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.wait()
    assert now[0] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="rate"):
        Pacer(-1)


def test_flags_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "envhost:1")
    monkeypatch.setenv("DRIFTLOOP_RATE", "7")
    monkeypatch.setenv("DRIFTLOOP_DRIFT_FEATURES", "a,b")
    settings = ProducerSettings(rate=9)
    assert settings.rate == 9
    assert settings.bootstrap_servers == "envhost:1"
    assert settings.drift_features == ("a", "b")
    assert ProducerSettings(bootstrap_servers="h:2").servers == ["h:2"]
    with pytest.raises(ValueError, match="KAFKA_BOOTSTRAP_SERVERS"):
        ProducerSettings(bootstrap_servers="nohostport")


def test_categorical_cells_go_as_text_missing_as_none_and_drift_to_the_rarest() -> None:
    x = np.array([["b", 1.0], ["a", np.nan], ["b", 2.0], [None, 3.0]], dtype=object)
    rows = list(
        replay(
            x,
            None,
            ["c", "n"],
            count=8,
            shuffle=False,
            categorical=["c"],
            drift=DriftPlan(after=4, mean=10.0, std=0.0, features=("c",)),
        )
    )
    assert [r.features for r in rows[:4]] == [
        {"c": "b", "n": 1.0},
        {"c": "a", "n": None},
        {"c": "b", "n": 2.0},
        {"c": None, "n": 3.0},
    ]
    # Only the category drifts (its rarest, "a"); a missing one stays missing.
    assert [r.features["c"] for r in rows[4:]] == ["a", "a", "a", None]
    assert [r.features["n"] for r in rows[4:]] == [1.0, None, 2.0, 3.0]
    messages = [
        RowMessage(stream="s", seq=r.seq, event_time=NOW, features=r.features) for r in rows
    ]
    assert b'"n":null' in messages[1].to_bytes()


def test_categorical_names_must_be_columns() -> None:
    with pytest.raises(ValueError, match=r"categorical \['z'\] are not columns"):
        next(replay(np.zeros((2, 1)), None, ["a"], count=1, categorical=["z"]))
