"""`python -m report` and `python -m consumer report`: flags, environment and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consumer.__main__ import main as consumer_main
from report.__main__ import main

REPO = Path(__file__).resolve().parents[3]


def test_main_prints_both_paths(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"

    assert main(["--artifact-root", str(root), "--out", str(out)]) == 0

    assert capsys.readouterr().out.splitlines() == [
        str(out / "drift-timeline.png"),
        str(out / "drift-timeline.html"),
    ]


def test_main_takes_the_root_from_the_environment_and_the_flag_beats_it(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(root))
    assert main([]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(root / "reports" / "drift-timeline.png")

    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(tmp_path / "empty"))
    assert main(["--artifact-root", str(root), "--topic", "rows"]) == 0


def test_main_says_when_there_is_nothing_to_report(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["--artifact-root", str(tmp_path / "nowhere")]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: nothing to plot: ")
    assert str(tmp_path / "nowhere" / "archive") in lines[0]


def test_the_consumer_report_command_is_the_same_command(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "report"

    assert consumer_main(["report", "--artifact-root", str(root), "--out", str(out)]) == 0

    assert capsys.readouterr().out.splitlines() == [
        str(out / "drift-timeline.png"),
        str(out / "drift-timeline.html"),
    ]
    with pytest.raises(SystemExit):
        consumer_main(["report", "--help"])
    assert capsys.readouterr().out.startswith("usage: python -m consumer report ")


def test_python_m_report_names_itself() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "report", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("usage: python -m report ")
