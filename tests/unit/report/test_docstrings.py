"""The docstring examples of every report module hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["report.timeline", "report.labels", "report.figure", "report.page", "report.render"]


@pytest.mark.parametrize("name", MODULES)
def test_the_docstring_examples_hold(name: str) -> None:
    assert doctest.testmod(importlib.import_module(name)).failed == 0
