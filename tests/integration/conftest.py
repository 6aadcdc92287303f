"""Fixtures for tests against the real broker: Iris on disk and a trained champion."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.dataset import load_dataset, write_iris_csv
from models.registry import Registry
from models.training import train_and_register


@pytest.fixture(scope="session")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_iris_csv(tmp_path_factory.mktemp("data") / "iris.csv")


@pytest.fixture
def artifact_root(tmp_path: Path, iris_csv: Path) -> Path:
    """An artifact root whose registry has a champion trained on Iris."""
    train_and_register(Registry(tmp_path / "var"), load_dataset(iris_csv), seed=7)
    return tmp_path / "var"
