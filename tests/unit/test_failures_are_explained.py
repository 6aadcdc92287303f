"""Failures a newcomer meets first get a one-line reason, not a hang or a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from broker.errors import LocalBrokerError
from broker.local import LocalBroker, free_port


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_broker_start_says_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalBrokerError, match=f"port {port} .* is taken"):
            LocalBroker(home=tmp_path, port=port).start()


def test_broker_start_says_java_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LocalBrokerError, match="'java' is not on PATH"):
        LocalBroker(home=tmp_path, port=free_port()).start()


def test_broker_refuses_an_impossible_port() -> None:
    with pytest.raises(ValueError, match="port"):
        LocalBroker(port=70000)


def test_producer_reports_an_unreachable_broker(tmp_path: Path) -> None:
    csv = tmp_path / "tiny.csv"
    csv.write_text("x,target\n1.0,0\n2.0,1\n")
    result = run(
        "-m", "producer", "--data", str(csv), "--bootstrap-servers", f"127.0.0.1:{free_port()}"
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no Kafka broker answered at 127.0.0.1:")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "not found"),
        ("x,target\n-inf,0\n1.0,1\n", [], "x' has an infinite value"),
        ("x,target\n1.0,0\n2.0,1\n", ["--categorical", "y"], "categorical column 'y'"),
        ("x,y\n1.0,0\n2.0,1\n", [], "target"),
        ("x,target\n1.0,0\n2.0,1\n", ["--drift-features", "nope"], "nope"),
        ("x,target\n1.0,0\n2.0,1\n", ["--rate", "-5"], "rate"),
        ("x,target\n1.0,0\n2.0,1\n", ["--key-column", "id"], "key column 'id' not found"),
        ("id,x,target\nA,1.0,0\n,2.0,1\n", ["--key-column", "id"], "'id' has a missing value"),
    ],
)
def test_producer_explains_unusable_input(
    tmp_path: Path, content: str | None, args: list[str], message: str
) -> None:
    csv = tmp_path / "input.csv"
    if content is not None:
        csv.write_text(content)
    result = run("-m", "producer", "--data", str(csv), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]


def test_consumer_without_a_champion_says_how_to_train_one(tmp_path: Path) -> None:
    result = run("-m", "consumer", "--artifact-root", str(tmp_path))
    assert result.returncode == 2
    assert "python -m models train" in result.stderr


def test_consumer_refuses_a_step_larger_than_the_window(tmp_path: Path) -> None:
    result = run("-m", "consumer", "--window-size", "10", "--window-step", "20")
    assert result.returncode == 2
    assert "window_step" in result.stderr
