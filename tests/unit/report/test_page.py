"""The HTML page: the picture embedded, the tables, the registry's context, and escaping."""

from __future__ import annotations

import base64
import tomllib
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path

import report
from models.registry import VersionMetadata
from report.page import page
from report.render import render
from report.timeline import load_timeline
from tests.unit.report.verdicts import FEATURES, START, archive, verdict

REPO = Path(__file__).resolve().parents[3]


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


def test_feature_and_model_names_are_escaped_wherever_they_show(tmp_path: Path) -> None:
    # Two models, so the version labels carry the names; one switches, so the names
    # also reach the switch table and the picture's alt text, an attribute.
    hostile = "<script>alert(1)</script>"
    quoted = 'a&"b'
    features = ["<script>f</script>", "y&z"]
    archive(
        tmp_path,
        [
            verdict(0, 1, False, 0.9, features=features, model_name=hostile),
            verdict(1, 1, False, 0.9, features=features, model_name=quoted),
            verdict(2, 2, False, 0.9, features=features, model_name=quoted),
        ],
    )

    _, path = render(load_timeline(tmp_path), tmp_path / "out")
    text = path.read_text()

    assert "<script" not in text and 'a&"b' not in text
    assert "<tr><th>features</th><td>&lt;script&gt;f&lt;/script&gt;, y&amp;z</td></tr>" in text
    assert '<tr><td>&lt;script&gt;alert(1)&lt;/script&gt; v1</td><td class="num">1</td>' in text
    switch = "a&amp;&#34;b v1 → a&amp;&#34;b v2"
    assert f"<tr><td>{switch}</td>" in text
    assert f'alt="Drift timeline: 3 windows, 0 drifted; switch {switch} at offset 100">' in text
    assert f"model &lt;script&gt;alert(1)&lt;/script&gt; v1 → {switch} · " in text


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


def test_the_page_lists_skipped_files_and_says_when_it_was_made(root: Path) -> None:
    garbage = root / "archive" / "rows" / "iris" / "0" / "000000009000-000000009049.json"
    garbage.write_text("{not json")
    made = datetime(2026, 12, 1, 10, 30, 5, tzinfo=UTC)

    text = page(load_timeline(root), "t", b"png", generated=made)

    assert '<p class="warn">Skipped 1 malformed verdict file(s):</p>' in text
    assert f"<li><code>{garbage}</code></li>" in text
    assert "generated 2026-12-01 10:30:05 UTC by <code>python -m consumer report</code>" in text
    assert text.endswith("</body></html>\n")


def test_the_template_ships_with_the_package() -> None:
    # An installed (non-editable) package holds only what package-data names.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["report"]
    package = Path(report.__file__).parent
    templates = [p.relative_to(package).as_posix() for p in (package / "templates").iterdir()]

    assert templates
    assert [t for t in templates if not any(fnmatch(t, p) for p in patterns)] == []


def test_accuracy_from_labels_that_came_later_is_drawn_on_its_window(tmp_path: Path) -> None:
    from consumer.labels.store import LabelStore, LateAccuracy

    events = [verdict(i, 1, False, None) for i in range(4)]
    archive(tmp_path, events)
    store = LabelStore(tmp_path, "labels", fsync=False)
    for event, accuracy in ((events[1], 0.75), (events[3], 0.5)):
        w = event.window
        store.record_accuracy(
            "iris",
            LateAccuracy(
                window=f"seg#{w.first_offset}-{w.last_offset}",
                stream="iris",
                topic=w.topic,
                partition=w.partition,
                first_offset=w.first_offset,
                last_offset=w.last_offset,
                model_name="classifier",
                model_version=1,
                accuracy=accuracy,
                labeled=w.size,
                size=w.size,
                reported_at=START,
            ),
        )
    store.close()

    timeline = load_timeline(tmp_path)
    assert timeline.late_accuracy == [None, 0.75, None, 0.5]
    assert load_timeline(tmp_path, topic="rows").late_accuracy == [None, 0.75, None, 0.5]
    _, page = render(timeline, tmp_path / "out")
    assert "Hollow circles: the accuracy on a window once its labels came later" in page.read_text()
