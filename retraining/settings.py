"""RetrainSettings: when and how to retrain, from ``DRIFTLOOP_*`` environment variables."""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_settings import SettingsConfigDict

from models.registry import RegistrySettings


class RetrainSettings(RegistrySettings):
    """When and how to retrain; from ``DRIFTLOOP_*`` environment variables.

    Extends :class:`models.registry.RegistrySettings` (artifact root, model name).
    Keyword arguments beat the environment. Each range is declared on its field; a
    value out of range is refused with the field and its environment variable named.

    Examples
    --------
    >>> RetrainSettings(min_labeled_rows=60).min_labeled_rows
    60
    >>> try:
    ...     RetrainSettings(holdout_fraction=1.0)
    ... except ValueError as err:
    ...     print(err.errors()[0]["msg"])
    Value error, holdout_fraction (env DRIFTLOOP_HOLDOUT_FRACTION): Input should be less than 1, got 1.0
    """  # noqa: E501

    model_config = SettingsConfigDict(use_attribute_docstrings=True)

    min_labeled_rows: int = Field(default=150, ge=2)
    """Fewest labeled rows worth retraining on, at least 2: one row to train on, one to
    evaluate (env ``DRIFTLOOP_MIN_LABELED_ROWS``)."""

    promotion_p_value: float = Field(default=0.05, gt=0.0, lt=1.0)
    """Level of the promotion gate, in (0, 1): the challenger is promoted only if
    McNemar's exact test on the held-out rows says it is right more often than the
    champion at this level (env ``DRIFTLOOP_PROMOTION_P_VALUE``)."""

    min_holdout_rows: int = Field(default=30, ge=1)
    """Fewest held-out rows (after removing copies of training rows) the gate compares
    the two models on; with fewer the challenger is rejected
    (env ``DRIFTLOOP_MIN_HOLDOUT_ROWS``)."""

    cooldown_seconds: float = Field(default=300.0, ge=0.0, allow_inf_nan=False)
    """Seconds (finite, >= 0) after a promotion by a retrain during which drift events
    are skipped (env ``DRIFTLOOP_COOLDOWN_SECONDS``); the initial model starts no
    cooldown."""

    holdout_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    """Fraction, strictly between 0 and 1, of the most recent rows held out to compare
    challenger and champion (env ``DRIFTLOOP_HOLDOUT_FRACTION``)."""

    lookback_windows: int = Field(default=0, ge=0)
    """Archived windows (>= 0) before the drift window to train on as well
    (env ``DRIFTLOOP_LOOKBACK_WINDOWS``). None by default: the challenger's reference
    data is what it was trained on, and pre-drift rows in it would keep the drifted
    windows alerting after the switch."""

    seed: int = 7
    """Seed of the challenger's forest (env ``DRIFTLOOP_SEED``)."""

    labels_topic: str = "labels"
    """The labels topic whose stored late labels (``python -m consumer.labels``) label
    archived rows that came without one (env ``DRIFTLOOP_LABELS_TOPIC``)."""

    @field_validator(
        "min_labeled_rows",
        "promotion_p_value",
        "min_holdout_rows",
        "cooldown_seconds",
        "holdout_fraction",
        "lookback_windows",
        "seed",
        mode="wrap",
    )
    @classmethod
    def _name_the_variable(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # pydantic names only the field; the person who set it knows the variable.
        try:
            return handler(value)
        except ValidationError as err:
            name = info.field_name or ""
            env = f"{cls.model_config.get('env_prefix', '')}{name.upper()}"
            reasons = "; ".join(error["msg"] for error in err.errors())
            raise ValueError(f"{name} (env {env}): {reasons}, got {value!r}") from None
