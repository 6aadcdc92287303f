"""Every package's docstring examples run as doctests with the rest of the tests."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTEST = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]


def packages() -> list[str]:
    """The project's top-level packages (``tests`` aside)."""
    return sorted(
        p.parent.name for p in REPO.glob("*/__init__.py") if p.parent.name not in ("tests",)
    )


def test_doctests_are_collected() -> None:
    assert "--doctest-modules" in PYTEST["addopts"].split()


def test_every_package_is_a_test_path() -> None:
    assert "consumer" in packages()
    missing = [name for name in packages() if name not in PYTEST["testpaths"]]
    assert missing == []


def test_the_packages_have_examples_to_run() -> None:
    with_examples = {
        p.relative_to(REPO).parts[0]
        for name in packages()
        for p in (REPO / name).rglob("*.py")
        if ">>>" in p.read_text()
    }
    assert {"consumer", "models", "producer", "broker"} <= with_examples
