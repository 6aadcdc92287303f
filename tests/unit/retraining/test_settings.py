"""RetrainSettings: defaults, and ranges refused with the environment variable named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from retraining.settings import RetrainSettings


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("DRIFTLOOP_MIN_LABELED_ROWS", "1"),
        ("DRIFTLOOP_PROMOTION_P_VALUE", "0"),
        ("DRIFTLOOP_PROMOTION_P_VALUE", "1"),
        ("DRIFTLOOP_MIN_HOLDOUT_ROWS", "0"),
        ("DRIFTLOOP_COOLDOWN_SECONDS", "-5"),
        ("DRIFTLOOP_COOLDOWN_SECONDS", "inf"),
        ("DRIFTLOOP_HOLDOUT_FRACTION", "0"),
        ("DRIFTLOOP_HOLDOUT_FRACTION", "1"),
        ("DRIFTLOOP_LOOKBACK_WINDOWS", "-1"),
    ],
)
def test_settings_name_the_variable_they_reject(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=env):
        RetrainSettings()


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in RetrainSettings.model_fields:
        monkeypatch.delenv(f"DRIFTLOOP_{name.upper()}", raising=False)
    settings = RetrainSettings()
    assert (
        settings.min_labeled_rows,
        settings.promotion_p_value,
        settings.min_holdout_rows,
        settings.cooldown_seconds,
        settings.holdout_fraction,
        settings.lookback_windows,
    ) == (150, 0.05, 30, 300.0, 0.3, 0)
