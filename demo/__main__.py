"""`python -m demo`: start a local broker, train a champion, stream clean then noised rows.

Everything the demo starts it also stops, on success, on error and on Ctrl-C;
a broker that was already running is left running.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from broker.local import LocalBroker
from broker.settings import KafkaSettings
from broker.topics import ensure_topics
from models.registry import Registry, RegistrySettings

ROOT = Path(__file__).resolve().parents[1]


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


class Process:
    """A child process whose output is echoed with a prefix and kept for inspection."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
        )
        self._reader = threading.Thread(target=self._echo, daemon=True)
        self._reader.start()

    def _echo(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip())
            print(f"[{self.name}] {line.rstrip()}", flush=True)

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        return sum(1 for line in list(self.lines) if regex.search(line))

    def stop(self, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._reader.join(timeout=5)
        return self.popen.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run the streaming loop locally: Kafka broker, champion model, consumer, "
        "and a producer that sends clean rows and then the tutorial's noise.",
    )
    parser.add_argument("--rows", type=int, default=600, help="rows to send (default 600)")
    parser.add_argument(
        "--drift-after", type=int, default=300, help="noise from this row on (default 300)"
    )
    parser.add_argument("--rate", type=float, default=100, help="rows per second (default 100)")
    parser.add_argument("--window-size", type=int, default=50, help="rows per window (default 50)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    kafka = KafkaSettings()
    registry_settings = RegistrySettings()
    started: list[Process] = []
    broker: LocalBroker | None = None
    try:
        say(f"Kafka at {kafka.bootstrap_servers}")
        host, _, port = kafka.servers[0].rpartition(":")
        if host in ("localhost", "127.0.0.1") and not _answers(kafka):
            broker = LocalBroker(port=int(port))
            print(f"no broker answering; starting one (log: {broker.log_file})")
            broker.start()
        ensure_topics(
            kafka.servers,
            [kafka.rows_topic, kafka.drift_topic, kafka.model_updates_topic, kafka.dlq_topic],
        )

        data = ROOT / "data" / "iris.csv"
        if not data.exists():
            say("preparing data/iris.csv from scikit-learn's bundled Iris")
            _run([sys.executable, "-m", "data", "prepare", "--out", str(data)], env)
        registry = Registry.from_settings(registry_settings)
        if registry.champion_version() is None:
            say("training the first model; it becomes champion")
            _run([sys.executable, "-m", "models", "train", "--data", str(data)], env)
        else:
            print(f"champion: {registry.model_name} v{registry.champion_version()}")

        say(f"starting the consumer (windows of {args.window_size} rows)")
        consumer = Process(
            "consumer",
            [sys.executable, "-m", "consumer", "--window-size", str(args.window_size)],
            env,
        )
        started.append(consumer)
        _wait(lambda: consumer.count(r"consuming topic=") > 0, 90, consumer, "consumer start")

        say(
            f"producing {args.rows} rows at {args.rate:g}/s; Gaussian noise (mean 3, std 1) "
            f"on every feature from row {args.drift_after}"
        )
        producer = Process(
            "producer",
            [
                sys.executable,
                "-m",
                "producer",
                "--data",
                str(data),
                "--rate",
                str(args.rate),
                "--count",
                str(args.rows),
                "--drift-after",
                str(args.drift_after),
                "--seed",
                "7",
            ],
            env,
        )
        started.append(producer)
        if producer.popen.wait() != 0:
            raise SystemExit("the producer failed; see its output above")
        windows = args.rows // args.window_size
        _wait(
            lambda: consumer.count(r" drift=(yes|no)") >= windows, 60, consumer, "the last window"
        )
        consumer.stop()
        alerts = consumer.count(r"DRIFT \*\*\*")
        say(
            f"done: {consumer.count(r' drift=(yes|no)')} windows judged, {alerts} drift alerts, "
            f"{consumer.count('dead-letter')} dead letters; "
            f"windows archived under {registry_settings.artifact_root}/archive"
        )
        return 0
    except KeyboardInterrupt:
        say("interrupted; stopping what the demo started")
        return 130
    finally:
        for process in reversed(started):
            process.stop()
        if broker is not None:
            broker.stop()


def _answers(kafka: KafkaSettings) -> bool:
    import socket

    host, _, port = kafka.servers[0].rpartition(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def _run(cmd: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(cmd, env=env, cwd=ROOT, check=False)
    if result.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}")


def _wait(condition, timeout: float, process: Process, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.popen.poll() is not None:
            raise SystemExit(
                f"the {process.name} exited ({process.popen.returncode}) before {what}"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
