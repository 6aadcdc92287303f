"""The champion: the model windows are judged for, with its decoder, detector and predictor."""

from __future__ import annotations

from typing import Any

import numpy as np

from consumer.decoding import RowDecoder
from consumer.detection import make_detector
from consumer.settings import ConsumerSettings
from models.prediction import label_predictor
from models.registry import LoadedModel, Registry, RegistryError


class NoChampionError(RuntimeError):
    """The registry has no champion model to judge windows against."""

    @classmethod
    def in_registry(cls, registry: Registry) -> NoChampionError:
        """The error for ``registry``, saying how to get a first champion."""
        return cls(
            f"no champion model in {registry.root}: train one first with "
            "`python -m models train --data data/iris.csv`"
        )


class Champion:
    """The model windows are judged for: its estimator, reference data and KS detector.

    Its decoder takes rows with the version's features and labels among the
    estimator's classes (`model_classes`), and codes the categorical features'
    strings by the version's ``categories``; its detector tests those by chi-squared.

    Parameters
    ----------
    loaded : LoadedModel
        A verified version from the registry.
    settings : ConsumerSettings
        The detector's significance level, correction and backend.

    Raises
    ------
    RegistryError
        When the estimator has no classes a row's label can be checked against.
    """

    def __init__(self, loaded: LoadedModel, settings: ConsumerSettings) -> None:
        self.loaded = loaded
        self.metadata = loaded.metadata
        names = loaded.metadata.feature_names
        categories = loaded.metadata.categories
        self.decoder = RowDecoder(names, classes=model_classes(loaded), categories=categories)
        self.detector = make_detector(
            loaded.reference,
            p_val=settings.p_val,
            correction=settings.correction,
            backend=settings.ks_backend,
            categorical=[names.index(name) for name in categories],
        )
        self.predict_labels = label_predictor(loaded.estimator, loaded.reference)
        """The estimator's ``predict``, or an equal and cheaper one; see `label_predictor`."""

    @classmethod
    def from_registry(cls, registry: Registry, settings: ConsumerSettings) -> Champion:
        """The registry's current champion.

        Raises
        ------
        NoChampionError
            When nothing has been promoted yet.
        RegistryError
            When the champion's files are missing, corrupt or tampered with, or its
            estimator has no classes to check labels against.
        """
        loaded = registry.champion()
        if loaded is None:
            raise NoChampionError.in_registry(registry)
        return cls(loaded, settings)

    @property
    def label(self) -> str:
        """``name:vN``, as log lines name the model."""
        return f"{self.metadata.model_name}:v{self.metadata.version}"


def model_classes(loaded: LoadedModel) -> list[int | str]:
    """The labels ``loaded``'s estimator predicts: its ``classes_`` as Python ints or strs.

    Every registered version has them (a fitted classifier keeps them), so the
    registry's metadata need not: old registries load as they are.

    Raises
    ------
    RegistryError
        If the estimator has no ``classes_``, or classes other than integers and
        strings (the types a row's label may have).
    """
    classes: Any = getattr(loaded.estimator, "classes_", None)
    name = f"{loaded.metadata.model_name}:v{loaded.metadata.version}"
    if classes is None:
        raise RegistryError(f"{name}'s estimator has no classes_ to check labels against")
    values = np.asarray(classes)
    listed = values.tolist() if values.ndim == 1 else []
    if (
        not listed
        or values.dtype.kind not in "iuUO"
        or not all(isinstance(c, int | str) and not isinstance(c, bool) for c in listed)
    ):
        raise RegistryError(
            f"{name}'s classes must be one or more integers or strings, "
            f"got {values.dtype} {_short(repr(values.tolist()))}"
        )
    return listed


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
