"""The README's commands and flags are the ones the entry points really take."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()

ENTRY_POINTS = {
    "producer": ["--help"],
    "consumer": ["--help"],
    "consumer report": ["report", "--help"],
    "consumer.labels": ["--help"],
    "report": ["--help"],
    "models": ["--help"],
    "data": ["--help"],
    "broker": ["--help"],
    "demo": ["--help"],
}


def help_text(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    module = importlib.import_module(f"{name.split()[0]}.__main__")
    with pytest.raises(SystemExit) as exited:
        module.main(ENTRY_POINTS[name])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_entry_point_explains_itself(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(name, capsys)
    assert text.startswith("usage: python -m ")
    assert len(text.splitlines()) > 3


def test_every_flag_in_the_settings_table_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    table = README[README.index("## Settings") : README.index("## How it behaves")]
    flags = set(re.findall(r"\| `[A-Z_]+` \| `(--[a-z-]+)` \|", table))
    assert len(flags) > 10
    helps = help_text("consumer", capsys) + help_text("producer", capsys)
    helps += help_text("consumer.labels", capsys)
    missing = sorted(flag for flag in flags if flag not in helps)
    assert missing == []


def test_every_consumer_setting_is_in_the_settings_table() -> None:
    from broker.cli import env_names
    from broker.logs import LogSettings
    from consumer.settings import ConsumerSettings

    table = README[README.index("## Settings") : README.index("## How it behaves")]
    named = set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.MULTILINE))
    envs = {
        env for name in ConsumerSettings.model_fields for env in env_names(ConsumerSettings, name)
    }
    missing = sorted((envs | {"DRIFTLOOP_LOG_FORMAT"}) - named)
    assert missing == []
    assert set(LogSettings.model_fields) == {"log_format"}


def test_the_producer_command_in_the_readme_parses() -> None:
    from producer.__main__ import parse_args

    start = README.index(".venv/bin/python -m producer --data data/iris.csv")
    command = README[start : README.index("\n", README.index("--seed 7", start))]
    words = command.replace("\\\n", " ").replace("[", "").replace("]", "").split()[3:]
    parsed, _, _ = parse_args(words)
    assert parsed.drift_after == 300 and parsed.noise_mean == 3.0
    assert parsed.drift_features == ("petal_length", "sepal_width")


def test_the_consumer_command_in_the_readme_parses() -> None:
    from consumer.__main__ import parse_args

    start = README.index(".venv/bin/python -m consumer --window-size 50")
    command = README[start : README.index("\n", start)]
    words = command.replace("[", "").replace("]", "").split()[3:]
    parsed, _, _ = parse_args(words)
    assert (parsed.window_size, parsed.step, parsed.p_val) == (50, 25, 0.05)
    assert parsed.correction == "bonferroni"


def test_the_license_note_dates_alibi_detects_licence_change() -> None:
    # alibi-detect 0.11.5 was the first release under the Business Source License.
    note = README[README.index("## License note") :]
    note = note[: note.index("\n## ")]
    assert "from version 0.11.5 on is under the\nBusiness Source License 1.1" in note
    assert "0.12" not in note
