"""The command line comes from the settings classes: flags, help, defaults, errors, logging."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field

from broker.cli import add_flags, build, env_names, flag
from broker.logs import LogSettings
from broker.settings import KafkaSettings
from consumer.__main__ import parse_args as consumer_args
from consumer.settings import ConsumerSettings
from producer.__main__ import NOT_THE_PRODUCERS
from producer.__main__ import parse_args as producer_args
from producer.settings import ProducerSettings


def flags_of(settings: type[KafkaSettings], **exclude: frozenset[str]) -> dict[str, str]:
    """Each flag ``add_flags`` makes for ``settings`` and its help."""
    parser = argparse.ArgumentParser()
    add_flags(parser, settings, **exclude)
    return {
        option: action.help or ""
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    }


class Toy(KafkaSettings):
    """A settings class that exists only here."""

    retries: int = Field(default=7, ge=0)
    """How often to try again."""
    mode: str = "calm"
    """How to behave, 100% of the time."""


def test_help_shows_the_docstring_the_default_and_the_environment_variable() -> None:
    helps = flags_of(Toy)
    assert helps["--retries"] == "How often to try again. (default 7; env DRIFTLOOP_RETRIES)"
    assert helps["--mode"] == "How to behave, 100%% of the time. (default calm; env DRIFTLOOP_MODE)"
    assert helps["--bootstrap-servers"].endswith(
        "(default localhost:9092; env KAFKA_BOOTSTRAP_SERVERS)"
    )


def test_every_default_in_the_help_is_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    helps = flags_of(ConsumerSettings)
    assert helps["--window-size"] == "Rows per window. (default 50; env DRIFTLOOP_WINDOW_SIZE)"
    assert "(default 0.05; env DRIFTLOOP_P_VAL)" in helps["--p-val"]
    # An unset default is not shown: the docstring says what unset means.
    assert helps["--window-step"].endswith("by default. (env DRIFTLOOP_WINDOW_STEP)")
    for name, field in ConsumerSettings.model_fields.items():
        assert (field.description or "x").replace("``", "") in helps[flag(name)], name
        assert f"env {env_names(ConsumerSettings, name)[0]}" in helps[flag(name)], name
    with pytest.raises(SystemExit):
        consumer_args(["--help"])
    text = capsys.readouterr().out
    assert "--ks-backend {alibi,fast}" in text and "--correction {bonferroni,fdr}" in text


def test_every_field_is_a_flag_and_booleans_go_both_ways() -> None:
    consumer = flags_of(ConsumerSettings)
    assert {flag(name) for name in ConsumerSettings.model_fields} <= consumer.keys()
    assert {"--archive-fsync", "--no-archive-fsync"} <= consumer.keys()
    producer = flags_of(ProducerSettings, exclude=NOT_THE_PRODUCERS)
    assert {"--loop", "--no-loop", "--shuffle", "--no-shuffle"} <= producer.keys()
    assert "--drift-topic" not in producer


CONSUMER_FLAGS = shlex.split(
    "--window-size 50 --window-step 25 --p-val 0.05 --correction bonferroni --ks-backend fast "
    "--group-id g --artifact-root /tmp/root --model-name m --bootstrap-servers h:1 "
    "--rows-topic r --drift-topic d --dlq-topic q --metrics-port 9100 --metrics-host 0.0.0.0 "
    "--idle-exit 3 --log-format json"
)

PRODUCER_FLAGS = shlex.split(
    "--data d.csv --rate 5 --count 3 --drift-after 2 --noise-mean 1 --noise-std 2 "
    "--drift-features a,b --seed 1 --loop --label-column y --stream s --no-shuffle --quiet "
    "--metrics-port 9 --metrics-host h --bootstrap-servers a:1 --rows-topic t"
)


def test_the_flags_of_before_still_parse() -> None:
    settings, logs, idle_exit = consumer_args(CONSUMER_FLAGS)
    assert (settings.window_size, settings.step, settings.p_val) == (50, 25, 0.05)
    assert (settings.ks_backend, settings.group_id, settings.model_name) == ("fast", "g", "m")
    assert settings.artifact_root == Path("/tmp/root")
    assert (settings.rows_topic, settings.drift_topic, settings.dlq_topic) == ("r", "d", "q")
    assert (settings.metrics_port, settings.metrics_host, idle_exit) == (9100, "0.0.0.0", 3.0)
    assert settings.servers == ["h:1"] and logs.log_format == "json"

    produced, _, quiet = producer_args(PRODUCER_FLAGS)
    assert produced.drift_features == ("a", "b") and produced.loop and not produced.shuffle
    assert (produced.rate, produced.count, produced.drift_after, produced.seed) == (5, 3, 2, 1)
    assert (produced.noise_mean, produced.noise_std, produced.stream_name) == (1, 2, "s")
    assert (produced.label_column, produced.rows_topic, produced.data) == ("y", "t", Path("d.csv"))
    assert quiet


def test_a_flag_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_WINDOW_SIZE", "80")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env-host:9092")
    monkeypatch.setenv("DRIFTLOOP_ARCHIVE_FSYNC", "false")
    monkeypatch.setenv("DRIFTLOOP_LOG_FORMAT", "json")
    from_env, logs, _ = consumer_args([])
    assert from_env.window_size == 80 and from_env.servers == ["env-host:9092"]
    assert not from_env.archive_fsync and logs.log_format == "json"
    argv = "--window-size 50 --bootstrap-servers flag-host:1 --archive-fsync --log-format text"
    from_flags, logs, _ = consumer_args(argv.split())
    assert from_flags.window_size == 50 and from_flags.servers == ["flag-host:1"]
    assert from_flags.archive_fsync and logs.log_format == "text"

    monkeypatch.setenv("DRIFTLOOP_SHUFFLE", "true")
    assert not producer_args(["--no-shuffle"])[0].shuffle


@pytest.mark.parametrize(
    ("argv", "env", "line"),
    [
        (
            ["--window-size", "1"],
            {},
            "--window-size (env DRIFTLOOP_WINDOW_SIZE): Input should be greater than or equal to 2",
        ),
        (
            [],
            {"DRIFTLOOP_WINDOW_SIZE": "1"},
            "--window-size (env DRIFTLOOP_WINDOW_SIZE): Input should be greater than or equal to 2",
        ),
        (
            ["--p-val", "often"],
            {},
            "--p-val (env DRIFTLOOP_P_VAL): Input should be a valid number, "
            "unable to parse string as a number",
        ),
        (
            [],
            {"DRIFTLOOP_CORRECTION": "holm"},
            "--correction (env DRIFTLOOP_CORRECTION): Input should be 'bonferroni' or 'fdr'",
        ),
        (
            ["--bootstrap-servers", "nohost"],
            {},
            "--bootstrap-servers (env KAFKA_BOOTSTRAP_SERVERS): "
            "must be host:port[,host:port...], got 'nohost'",
        ),
        (
            ["--window-seconds", "0"],
            {},
            "--window-seconds (env DRIFTLOOP_WINDOW_SECONDS): Input should be greater than 0",
        ),
        (
            ["--window-seconds", "60", "--window-step", "25"],
            {},
            "window_seconds closes tumbling windows only: window_step (25) must be unset or "
            "equal window_size (50)",
        ),
        (
            ["--window-min-rows", "60"],
            {"DRIFTLOOP_WINDOW_SECONDS": "60"},
            "window_min_rows (60) must not exceed window_size (50): no window could close on time",
        ),
        (
            ["--model-name", "a/b"],
            {},
            "--model-name (env DRIFTLOOP_MODEL_NAME): must be letters, digits, '.', '_' or '-' "
            "and start with a letter or digit, got 'a/b'",
        ),
    ],
)
def test_a_bad_value_names_the_flag_and_the_environment_variable(
    argv: list[str],
    env: dict[str, str],
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        consumer_args(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"error: {line}\n"


def test_time_windows_are_off_by_default_and_set_by_flag_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = consumer_args([])[0]
    assert (default.window_seconds, default.window_time) == (None, None)
    assert consumer_args(["--window-seconds", "90.5"])[0].window_time == (90.5, 10)
    monkeypatch.setenv("DRIFTLOOP_WINDOW_SECONDS", "600")
    monkeypatch.setenv("DRIFTLOOP_WINDOW_MIN_ROWS", "20")
    assert consumer_args([])[0].window_time == (600.0, 20)
    assert consumer_args(["--window-min-rows", "5"])[0].window_time == (600.0, 5)


def test_the_producer_names_its_flags_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        producer_args(["--noise-std", "-1"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: --noise-std (env DRIFTLOOP_NOISE_STD): Input should be greater than or equal to 0\n"
    )


def test_build_takes_only_its_own_fields() -> None:
    args = argparse.Namespace(log_format="json", window_size="60", idle_exit=3.0)
    assert build(LogSettings, args).log_format == "json"
    assert build(ConsumerSettings, args).window_size == 60


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_parsing_the_consumers_flags_stays_cheap() -> None:
    # The signal handlers are installed after parsing, before scikit-learn and SciPy load.
    code = (
        "import sys; from consumer.__main__ import parse_args; parse_args(['--window-size', '9']);"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'alibi_detect',"
        " 'kafka', 'matplotlib'}))"
    )
    assert run("-c", code).stdout.strip() == "[]"


def test_log_format_json_is_one_object_per_line(tmp_path: Path) -> None:
    out = tmp_path / "iris.csv"
    args = ["-m", "data", "prepare", "--out", str(out), "--log-level", "DEBUG"]
    result = run(*args, "--log-format", "json")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 2
    for line in lines:
        entry = json.loads(line)
        assert set(entry) == {"time", "level", "logger", "message"}
        assert entry["logger"] == "data.dataset" and entry["level"] in {"DEBUG", "INFO"}
    assert json.loads(lines[0])["message"] == f"wrote iris path={out} rows=150"

    text = run(*args)
    assert text.returncode == 0, text.stderr
    first = text.stderr.splitlines()[0]
    assert " level=INFO logger=data.dataset wrote iris path=" in first
