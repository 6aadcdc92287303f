"""The HTML page: the picture embedded, the tables, the registry's context, and escaping."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

from models.registry import VersionMetadata
from report.render import render
from report.timeline import load_timeline
from tests.unit.report.verdicts import FEATURES, START, archive, verdict


def test_the_page_embeds_the_picture_and_the_summary(root: Path, tmp_path: Path) -> None:
    png, page = render(load_timeline(root), tmp_path / "out")
    text = page.read_text()

    assert f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"' in text
    assert "<tr><th>windows</th><td>12</td></tr>" in text
    assert "<tr><th>drifted windows (drift events)</th><td>4</td></tr>" in text
    assert '<tr><td>v1</td><td class="num">8</td><td class="num">4</td>' in text
    assert '<tr><td>v2</td><td class="num">4</td><td class="num">0</td>' in text
    assert "<tr><td>v1 → v2</td>" in text
    assert "rows partition 0, offsets 400-449" in text
    # Self-contained: nothing fetched from elsewhere.
    assert "<script" not in text and "<link" not in text and "http" not in text


def test_the_page_escapes_text(tmp_path: Path) -> None:
    archive(tmp_path, [verdict(0, 1, False, 0.9, features=["<b>x</b>", "y&z"])])

    _, page = render(load_timeline(tmp_path), tmp_path / "out", title="<script>x</script>")
    text = page.read_text()

    assert "<script>x</script>" not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;, y&amp;z" in text


def test_the_page_adds_what_the_registry_says(root: Path, tmp_path: Path) -> None:
    metadata = VersionMetadata(
        model_name="classifier",
        version=2,
        created_at=START + timedelta(seconds=7),
        training_data_sha256="1" * 64,
        feature_names=FEATURES,
        label_column="target",
        metrics={"accuracy": 0.95},
        parent_version=1,
        cause="retrained on 4 drifted windows",
        drift_event_id="rows-0-200-249",
        decision="promoted",
        model_sha256="2" * 64,
        reference_sha256="3" * 64,
        reference_rows=200,
        training_rows=200,
    )
    version_dir = root / "registry" / "classifier" / "versions" / "0002"
    version_dir.mkdir(parents=True)
    (version_dir / "metadata.json").write_text(metadata.model_dump_json())

    timeline = load_timeline(root)
    _, page = render(timeline, tmp_path / "out")

    assert [v.metadata is not None for v in timeline.versions] == [False, True]
    assert "retrained on 4 drifted windows (drift event rows-0-200-249)" in page.read_text()
