"""Registry: immutable, versioned models with their reference data and a champion pointer.

Layout under the artifact root::

    <root>/registry/<model_name>/versions/<NNNN>/model.skops
                                                /reference.npy
                                                /metadata.json
    <root>/registry/<model_name>/champion.json

A version is built in a temporary directory inside ``versions/`` and renamed into
place, so it appears whole or not at all and is never written again. The champion
pointer is replaced atomically. Loading checks the sha256 of the model and the
reference data against the metadata before reading them, and skops loads only the
scikit-learn and NumPy types on :data:`ALLOWED_TYPES`.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from data.durable import fsync_dir, fsync_file, write_atomic

logger = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
"""File name of the serialized estimator inside a version directory."""
REFERENCE_FILE = "reference.npy"
"""File name of the reference data (float64, no pickles) inside a version directory."""
METADATA_FILE = "metadata.json"
"""File name of the :class:`VersionMetadata` inside a version directory."""
CHAMPION_FILE = "champion.json"
"""File name of the champion pointer inside a model's directory."""
PROMOTIONS_DIR = "promotions"
"""Directory of the champion's switch history, one record per switch."""

ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.random.mtrand.RandomState",
        "numpy.random._mt19937.MT19937",
    }
)
"""Types a model file may hold beyond skops' own defaults; anything else is refused."""

Decision = Literal["initial", "promoted", "rejected", "registered"]
"""How a version came to be: first model, challenger promoted or rejected, or just stored."""

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TMP_PREFIX = ".tmp-"
_MAX_RENAME_ATTEMPTS = 100


class RegistryError(RuntimeError):
    """The registry cannot do what was asked: a missing version, a corrupt file, bad input."""


class TamperedArtifactError(RegistryError):
    """A stored file's sha256 differs from the one its metadata recorded."""


class RegistrySettings(BaseSettings):
    """Where the registry lives; from ``DRIFTLOOP_*`` environment variables.

    Keyword arguments (the command-line flags) beat the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLOOP_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    artifact_root: Path = Path("var")
    """Directory holding the registry and the window archive."""

    model_name: str = "classifier"
    """Name of the model whose versions are kept."""

    @field_validator("model_name")
    @classmethod
    def _safe_model_name(cls, value: str) -> str:
        if not _MODEL_NAME.fullmatch(value):
            raise ValueError(
                "model_name (env DRIFTLOOP_MODEL_NAME) must be letters, digits, '.', '_' or '-' "
                f"and start with a letter or digit, got {value!r}"
            )
        return value


class VersionMetadata(BaseModel):
    """What a registered version is, where it came from and how it scored."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )

    schema_version: Literal[1] = 1
    """Version of this metadata format."""

    model_name: str = Field(min_length=1)
    """Name of the model this is a version of."""

    version: int = Field(ge=1)
    """Version number, from 1, in order of registration."""

    created_at: AwareDatetime
    """When the version was registered (UTC)."""

    training_data_sha256: str = Field(min_length=1)
    """sha256 of the training data: the CSV file, or a digest of the archived windows used."""

    feature_names: list[str] = Field(min_length=1)
    """Feature names in the column order the estimator and the reference data use."""

    label_column: str = Field(min_length=1)
    """Name of the label column in the training data."""

    metrics: dict[str, float]
    """This version's scores on its held-out split: ``accuracy`` and ``f1_macro``."""

    parent_version: int | None = Field(default=None, ge=1)
    """The champion when this version was trained, if there was one."""

    cause: str = Field(min_length=1)
    """Why it was trained, e.g. ``initial training from data/iris.csv``."""

    drift_event_id: str | None = None
    """Id of the drift event that led to this version, if one did."""

    training_windows: list[str] = Field(default_factory=list)
    """The archived windows the version was trained on: ``<segment>#<first>-<last>``
    for a window in an archive segment, the ``.csv`` path for a per-window file
    (versions trained before segments). Archive retention keeps the segments named."""

    decision: Decision
    """``initial``, ``promoted``, ``rejected`` (challenger that lost) or ``registered``."""

    challenger_metrics: dict[str, float] | None = None
    """This version's scores in the champion-challenger comparison, if there was one."""

    champion_metrics: dict[str, float] | None = None
    """The champion's scores on the same held-out data, if there was a comparison."""

    comparison: dict[str, Any] | None = None
    """The promotion gate's paired test, if there was a comparison: its name, the
    discordant row counts, the p-value and level, the held-out rows compared and the
    duplicates of training rows removed from them, and the reason for the decision."""

    model_sha256: str = Field(min_length=64, max_length=64)
    """sha256 of ``model.skops``."""

    reference_sha256: str = Field(min_length=64, max_length=64)
    """sha256 of ``reference.npy``."""

    reference_rows: int = Field(ge=1)
    """Rows of reference data."""

    training_rows: int = Field(ge=1)
    """Rows the estimator was fitted on."""

    categories: dict[str, list[str]] = Field(default_factory=dict)
    """Each categorical feature's categories, sorted: a value's code in the reference
    data (and the estimator's input) is its position here. Numeric features are absent;
    a version registered before categorical features has none."""

    @field_validator("created_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class ChampionPointer(BaseModel):
    """Contents of ``champion.json``: which version serves."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    schema_version: Literal[1] = 1
    """Version of this pointer format."""

    model_name: str
    """Name of the model."""

    version: int = Field(ge=1)
    """The champion version."""

    previous_version: int | None = Field(default=None, ge=1)
    """The champion before this one, if there was one."""

    promoted_at: AwareDatetime
    """When the pointer was switched (UTC)."""

    promoted_by: Literal["training", "retraining", "hand"] | None = None
    """Who switched it: the first training, a retrain's promotion gate, or a person
    (``python -m models promote``); None in pointers written before this was kept."""

    reason: str | None = None
    """Why, in the words of whoever switched it."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified version: its metadata, estimator and reference data.

    Attributes
    ----------
    metadata : VersionMetadata
        The version's metadata.
    estimator : Any
        The fitted scikit-learn estimator (a forest, or a pipeline ending in one);
        predict with float64 arrays whose columns follow ``metadata.feature_names``,
        categorical features as codes into ``metadata.categories``.
    reference : numpy.ndarray
        float64, shape ``(metadata.reference_rows, len(metadata.feature_names))``;
        NaN where a value is missing.
    """

    metadata: VersionMetadata
    estimator: Any
    reference: np.ndarray


class Registry:
    """Versioned models of one name under an artifact root.

    Parameters
    ----------
    root : pathlib.Path
        The artifact root; the registry lives in ``root/registry/<model_name>``.
    model_name : str, default "classifier"
        Letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit.

    Raises
    ------
    ValueError
        If ``model_name`` is not a safe directory name.

    Examples
    --------
    >>> registry = Registry(Path("no-such-root"))
    >>> registry.version_dir(12).as_posix()
    'no-such-root/registry/classifier/versions/0012'
    >>> registry.versions(), registry.champion_version()
    ([], None)
    """

    def __init__(self, root: Path, model_name: str = "classifier") -> None:
        if not _MODEL_NAME.fullmatch(model_name):
            raise ValueError(
                "model_name must be letters, digits, '.', '_' or '-' and start with a letter "
                f"or digit, got {model_name!r}"
            )
        self.root = Path(root)
        self.model_name = model_name
        self.model_dir = self.root / "registry" / model_name
        self.versions_dir = self.model_dir / "versions"

    def __repr__(self) -> str:
        return f"Registry(root={str(self.root)!r}, model_name={self.model_name!r})"

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> Registry:
        """The registry the settings point at."""
        return cls(settings.artifact_root, settings.model_name)

    def version_dir(self, version: int) -> Path:
        """Directory of a version (whether or not it exists)."""
        return self.versions_dir / f"{version:04d}"

    def register(
        self,
        estimator: Any,
        reference: np.ndarray,
        *,
        feature_names: list[str],
        label_column: str,
        training_data_sha256: str,
        metrics: dict[str, float],
        cause: str,
        decision: Decision,
        parent_version: int | None = None,
        drift_event_id: str | None = None,
        training_windows: list[str] | None = None,
        training_rows: int,
        challenger_metrics: dict[str, float] | None = None,
        champion_metrics: dict[str, float] | None = None,
        comparison: dict[str, Any] | None = None,
        categories: dict[str, list[str]] | None = None,
    ) -> VersionMetadata:
        """Store a fitted estimator and its reference data as the next version.

        Registering does not promote: call :meth:`promote` for that.

        Parameters
        ----------
        estimator : Any
            A fitted scikit-learn estimator made of types on :data:`ALLOWED_TYPES`.
        reference : numpy.ndarray
            Reference data, shape ``(rows, len(feature_names))``, stored as float64:
            numbers, categorical features as codes into ``categories``, NaN where a
            value is missing; no infinity.
        feature_names : list of str
            Column order of ``reference`` and of the estimator's input.
        label_column, training_data_sha256, metrics, cause, decision, parent_version,
        drift_event_id, training_windows, training_rows, challenger_metrics, champion_metrics,
        comparison, categories
            Recorded in :class:`VersionMetadata`; see its fields.

        Returns
        -------
        VersionMetadata
            The new version's metadata.

        Raises
        ------
        ValueError
            If a parameter is malformed; the message names it.
        RegistryError
            If ``parent_version`` does not exist or the estimator holds a type not allowed.
        """
        if decision not in get_args(Decision):
            raise ValueError(f"decision must be one of {get_args(Decision)}, got {decision!r}")
        if not feature_names or len(set(feature_names)) != len(feature_names):
            raise ValueError(f"feature_names must be unique and non-empty, got {feature_names!r}")
        if training_rows < 1:
            raise ValueError(f"training_rows must be at least 1, got {training_rows}")
        reference = np.asarray(reference, dtype=np.float64)
        if reference.ndim != 2 or reference.shape[0] < 1:
            raise ValueError(
                f"reference must be a non-empty 2-D array, got shape {reference.shape}"
            )
        if reference.shape[1] != len(feature_names):
            raise ValueError(
                f"reference has {reference.shape[1]} columns but feature_names has "
                f"{len(feature_names)}"
            )
        if np.isinf(reference).any():
            raise ValueError("reference must hold no infinite values (NaN marks a missing one)")
        categories = _check_categories(categories or {}, feature_names, reference)
        if parent_version is not None:
            self.metadata(parent_version)

        self.versions_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.versions_dir, prefix=_TMP_PREFIX))
        try:
            model_path = staging / MODEL_FILE
            _skops().dump(estimator, model_path)
            _check_types(_skops().get_untrusted_types(file=model_path), "the estimator")
            fsync_file(model_path)
            reference_path = staging / REFERENCE_FILE
            with open(reference_path, "wb") as handle:
                np.save(handle, reference, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            fields: dict[str, Any] = {
                "model_name": self.model_name,
                "created_at": datetime.now(UTC),
                "training_data_sha256": training_data_sha256,
                "feature_names": list(feature_names),
                "label_column": label_column,
                "metrics": dict(metrics),
                "parent_version": parent_version,
                "cause": cause,
                "drift_event_id": drift_event_id,
                "training_windows": list(training_windows or []),
                "decision": decision,
                "challenger_metrics": challenger_metrics,
                "champion_metrics": champion_metrics,
                "comparison": comparison,
                "model_sha256": _sha256(model_path.read_bytes()),
                "reference_sha256": _sha256(reference_path.read_bytes()),
                "reference_rows": reference.shape[0],
                "training_rows": training_rows,
                "categories": categories,
            }
            metadata = self._publish(staging, fields)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info(
            "registered model=%s version=%d decision=%s metrics=%s cause=%r",
            self.model_name,
            metadata.version,
            metadata.decision,
            metadata.metrics,
            metadata.cause,
        )
        return metadata

    def promote(
        self,
        version: int,
        *,
        by: Literal["training", "retraining", "hand"] | None = None,
        reason: str | None = None,
    ) -> ChampionPointer:
        """Make ``version`` the champion by atomically replacing ``champion.json``.

        The version's files are verified first, so a tampered version never serves.
        Each switch is also kept, never overwritten, as
        ``promotions/<time>-v<version>.json``: the history of who served when and why.

        Parameters
        ----------
        version : int
            The version to serve.
        by : {"training", "retraining", "hand"}, optional
            Who switched it.
        reason : str, optional
            Why.

        Returns
        -------
        ChampionPointer
            The pointer now on disk.

        Raises
        ------
        RegistryError
            If the version does not exist; :class:`TamperedArtifactError` if its files
            do not match their metadata.
        """
        metadata = self.metadata(version)
        self._read_verified(version, MODEL_FILE, metadata.model_sha256)
        self._read_verified(version, REFERENCE_FILE, metadata.reference_sha256)
        previous = self.champion_version()
        pointer = ChampionPointer(
            model_name=self.model_name,
            version=version,
            previous_version=previous,
            promoted_at=datetime.now(UTC),
            promoted_by=by,
            reason=reason,
        )
        data = pointer.model_dump_json(indent=2).encode()
        stamp = pointer.promoted_at.strftime("%Y%m%dT%H%M%S%fZ")
        write_atomic(self.model_dir / PROMOTIONS_DIR / f"{stamp}-v{version:04d}.json", data)
        write_atomic(self.model_dir / CHAMPION_FILE, data)
        logger.info(
            "promoted model=%s version=%d previous=%s by=%s reason=%r",
            self.model_name,
            version,
            previous,
            by,
            reason,
        )
        return pointer

    def promotions(self) -> list[ChampionPointer]:
        """Every switch of the champion, oldest first (see :meth:`promote`).

        Raises
        ------
        RegistryError
            If a record cannot be read or is malformed.
        """
        records = []
        for path in sorted((self.model_dir / PROMOTIONS_DIR).glob("*.json")):
            try:
                records.append(ChampionPointer.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError) as err:
                raise RegistryError(f"promotion record {path} is unreadable: {err}") from err
        return records

    def champion_pointer(self) -> ChampionPointer | None:
        """The champion pointer (version, previous version, promotion time), or None.

        The one reader of ``champion.json``: the champion's version, the cooldown after
        a promotion and a retrain's check that its promotion took all read it here.

        Raises
        ------
        RegistryError
            If the pointer cannot be read, is malformed or names another model.
        """
        path = self.model_dir / CHAMPION_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise RegistryError(f"cannot read champion pointer {path}: {err}") from err
        try:
            pointer = ChampionPointer.model_validate_json(raw)
        except ValidationError as err:
            raise RegistryError(
                f"champion pointer {path} is malformed: {_first_error(err)}"
            ) from err
        if pointer.model_name != self.model_name:
            raise RegistryError(
                f"champion pointer {path} names model {pointer.model_name!r}, "
                f"not {self.model_name!r}"
            )
        return pointer

    def champion_version(self) -> int | None:
        """The champion's version number, or None before the first promotion."""
        pointer = self.champion_pointer()
        return None if pointer is None else pointer.version

    def champion(self) -> LoadedModel | None:
        """The verified champion, or None before the first promotion."""
        version = self.champion_version()
        return None if version is None else self.load(version)

    def load(self, version: int) -> LoadedModel:
        """Verify and load a version's estimator and reference data.

        Raises
        ------
        RegistryError
            If the version or one of its files is missing or malformed, or the model
            file holds a type not on :data:`ALLOWED_TYPES`.
        TamperedArtifactError
            If ``model.skops`` or ``reference.npy`` does not match its recorded sha256.
        """
        metadata = self.metadata(version)
        model_bytes = self._read_verified(version, MODEL_FILE, metadata.model_sha256)
        reference_bytes = self._read_verified(version, REFERENCE_FILE, metadata.reference_sha256)
        model_path = self.version_dir(version) / MODEL_FILE
        try:
            untrusted = _skops().get_untrusted_types(data=model_bytes)
            _check_types(untrusted, str(model_path))
            estimator = _skops().load(io.BytesIO(model_bytes), trusted=untrusted)
        except RegistryError:
            raise
        except Exception as err:
            raise RegistryError(f"cannot load model {model_path}: {err}") from err
        reference_path = self.version_dir(version) / REFERENCE_FILE
        try:
            reference = np.load(io.BytesIO(reference_bytes), allow_pickle=False)
        except (ValueError, OSError) as err:
            raise RegistryError(f"cannot load reference data {reference_path}: {err}") from err
        expected = (metadata.reference_rows, len(metadata.feature_names))
        if reference.dtype != np.float64 or reference.shape != expected:
            raise RegistryError(
                f"reference data {reference_path} is {reference.dtype} {reference.shape}, "
                f"metadata expects float64 {expected}"
            )
        logger.debug("loaded model=%s version=%d", self.model_name, version)
        return LoadedModel(metadata=metadata, estimator=estimator, reference=reference)

    def metadata(self, version: int) -> VersionMetadata:
        """A version's metadata.

        Raises
        ------
        RegistryError
            If the version does not exist or its metadata is malformed.
        """
        path = self.version_dir(version) / METADATA_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError as err:
            raise RegistryError(
                f"model {self.model_name!r} has no version {version} (no {path})"
            ) from err
        except OSError as err:
            raise RegistryError(f"cannot read {path}: {err}") from err
        try:
            metadata = VersionMetadata.model_validate_json(raw)
        except ValidationError as err:
            raise RegistryError(f"metadata {path} is malformed: {_first_error(err)}") from err
        if metadata.version != version or metadata.model_name != self.model_name:
            raise RegistryError(
                f"metadata {path} describes {metadata.model_name!r} version {metadata.version}, "
                f"not {self.model_name!r} version {version}"
            )
        return metadata

    def versions(self) -> list[VersionMetadata]:
        """Metadata of every version, in ascending version order."""
        return [self.metadata(version) for version in self._version_numbers()]

    def _version_numbers(self) -> list[int]:
        try:
            names = os.listdir(self.versions_dir)
        except FileNotFoundError:
            return []
        return sorted(int(name) for name in names if name.isdigit())

    def _publish(self, staging: Path, fields: dict[str, Any]) -> VersionMetadata:
        """Rename the staged directory to the next free version number."""
        for _ in range(_MAX_RENAME_ATTEMPTS):
            numbers = self._version_numbers()
            version = numbers[-1] + 1 if numbers else 1
            metadata = VersionMetadata(version=version, **fields)
            write_atomic(staging / METADATA_FILE, metadata.model_dump_json(indent=2).encode())
            fsync_dir(staging)
            try:
                os.rename(staging, self.version_dir(version))
            except OSError as err:
                # Another process took this number first; try the next one.
                if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    logger.debug("version %d taken, retrying", version)
                    continue
                raise
            fsync_dir(self.versions_dir)
            return metadata
        raise RegistryError(
            f"could not claim a version number in {self.versions_dir} "
            f"after {_MAX_RENAME_ATTEMPTS} attempts"
        )

    def _read_verified(self, version: int, name: str, expected: str) -> bytes:
        path = self.version_dir(version) / name
        try:
            data = path.read_bytes()
        except FileNotFoundError as err:
            raise RegistryError(f"{path} is missing") from err
        except OSError as err:
            raise RegistryError(f"cannot read {path}: {err}") from err
        actual = _sha256(data)
        if actual != expected:
            raise TamperedArtifactError(
                f"{path} has been modified: its sha256 is {actual} "
                f"but metadata.json records {expected}"
            )
        return data


def _skops() -> Any:
    """``skops.io``, imported on first use.

    Importing it imports scikit-learn, seconds of start-up that reading metadata
    and pointers (the retraining DAG's decisions, ``models list``) never needs. It
    also walks every loaded module, which inside an Airflow process trips ~1,600
    deprecation shims, each a warning in the task log: hence the quiet import.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import skops.io

    return skops.io


def _check_categories(
    categories: dict[str, list[str]], feature_names: list[str], reference: np.ndarray
) -> dict[str, list[str]]:
    """``categories``, checked: features' lists of distinct strings that the codes index."""
    out: dict[str, list[str]] = {}
    for name, values in categories.items():
        if name not in feature_names:
            raise ValueError(f"categories names {name!r}, which is not one of feature_names")
        values = [str(v) for v in values]
        if len(set(values)) != len(values):
            raise ValueError(f"categories of {name!r} must be distinct, got {values[:10]!r}")
        codes = reference[:, feature_names.index(name)]
        codes = codes[~np.isnan(codes)]
        if codes.size and not (
            (codes == np.floor(codes)).all() and codes.min() >= 0 and codes.max() < len(values)
        ):
            raise ValueError(
                f"reference column {name!r} must hold codes 0..{len(values) - 1} of its "
                "categories (or NaN)"
            )
        out[name] = values
    return out


def _check_types(untrusted: list[str], what: str) -> None:
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise RegistryError(f"{what} holds types that are not allowed: {', '.join(refused)}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "document"
    return f"{where}: {first['msg']}"
