"""The champion: the model windows are judged for, with its decoder, detector and predictor."""

from __future__ import annotations

from consumer.decoding import RowDecoder
from consumer.detection import make_detector
from consumer.settings import ConsumerSettings
from models.prediction import label_predictor
from models.registry import LoadedModel, Registry


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

    Parameters
    ----------
    loaded : LoadedModel
        A verified version from the registry.
    settings : ConsumerSettings
        The detector's significance level, correction and backend.
    """

    def __init__(self, loaded: LoadedModel, settings: ConsumerSettings) -> None:
        self.loaded = loaded
        self.metadata = loaded.metadata
        self.decoder = RowDecoder(loaded.metadata.feature_names)
        self.detector = make_detector(
            loaded.reference,
            p_val=settings.p_val,
            correction=settings.correction,
            backend=settings.ks_backend,
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
            When the champion's files are missing, corrupt or tampered with.
        """
        loaded = registry.champion()
        if loaded is None:
            raise NoChampionError.in_registry(registry)
        return cls(loaded, settings)

    @property
    def label(self) -> str:
        """``name:vN``, as log lines name the model."""
        return f"{self.metadata.model_name}:v{self.metadata.version}"
