"""Writing the picture and the page: names, the picture's size, every kind of timeline."""

from __future__ import annotations

from pathlib import Path

from report.render import render
from report.timeline import load_timeline
from tests.unit.report.verdicts import archive, png_size, verdict


def test_render_writes_a_png_of_the_expected_size(root: Path, tmp_path: Path) -> None:
    png, page = render(load_timeline(root), tmp_path / "out")

    assert (png.name, page.name) == ("drift-timeline.png", "drift-timeline.html")
    assert png_size(png) == (1400, 800)


def test_many_features_partitions_and_a_varying_threshold_render(tmp_path: Path) -> None:
    features = [f"f{i:02d}" for i in range(14)]
    events = [
        verdict(
            i,
            1 if i < 6 else 3,
            3 <= i < 6,
            None,
            partition=i % 2,
            features=features,
            correction="fdr",
            threshold=0.05 * (1 + i % 3) / len(features),
        )
        for i in range(10)
    ]
    archive(tmp_path, events)

    png, _ = render(load_timeline(tmp_path), tmp_path / "out")

    assert png_size(png) == (1400, 800)
