"""The archived story every report test starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.report.verdicts import STORY, archive, verdict


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An artifact root holding the story's twelve verdicts."""
    root = tmp_path / "var"
    archive(root, [verdict(i, *step) for i, step in enumerate(STORY)])
    return root
