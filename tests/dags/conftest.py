"""Fixtures for the DAG tests: an isolated Airflow home, and Airflow running in a child process.

Airflow reads its configuration when first imported, so it never runs in the test
session's process: :mod:`tests.dags.airflow_runner` serves the tests one request at
a time in a child started with an AIRFLOW_HOME of its own, each request carrying
the test's own topics, artifact root and Kafka connection. Every request is
bounded by a timeout (``dag.test()`` does not time out a waiting sensor); a child
that overruns is killed and the next request starts a fresh one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from broker.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
MIGRATE_TIMEOUT_S = 240.0
RUN_TIMEOUT_S = 150.0


@dataclass(frozen=True)
class AirflowRun:
    """What one request reported, and Airflow's output while it ran."""

    result: dict[str, Any]
    output: str

    @property
    def state(self) -> str:
        """The DAG run's final state."""
        return str(self.result["state"])

    @property
    def tasks(self) -> dict[str, str]:
        """Task id → final state."""
        return dict(self.result["tasks"])

    @property
    def tries(self) -> dict[str, int]:
        """Task id → how many times it ran."""
        return dict(self.result["tries"])

    @property
    def xcoms(self) -> dict[str, Any]:
        """``<task_id>.<key>`` → value."""
        return dict(self.result["xcoms"])


class AirflowServer:
    """The child process running :mod:`tests.dags.airflow_runner`, started on first use."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self._process: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def request(
        self, command: str, args: list[Any], env: dict[str, str], timeout: float
    ) -> AirflowRun:
        """Run ``command(*args)`` under ``env``; fail the test on an error or a timeout."""
        process = self._running()
        request_id = uuid.uuid4().hex
        result_path = self.workdir / f"{request_id}.json"
        with self._lock:
            start = len(self._lines)
        assert process.stdin is not None
        process.stdin.write(
            json.dumps(
                {
                    "id": request_id,
                    "command": command,
                    "args": args,
                    "env": env,
                    "result_path": str(result_path),
                }
            )
            + "\n"
        )
        process.stdin.flush()
        deadline = time.monotonic() + timeout
        while not result_path.exists():
            if process.poll() is not None:
                self._process = None
                pytest.fail(
                    f"airflow exited with code {process.returncode} during {command}:\n"
                    + self._output(start)[-6000:]
                )
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"airflow {command} did not finish in {timeout:.0f} s:\n"
                    + self._output(start)[-6000:]
                )
            time.sleep(0.1)
        reply = json.loads(result_path.read_text())
        output = self._output(start)
        if not reply["ok"]:
            pytest.fail(f"airflow {command} raised:\n{reply['error']}\n{output[-4000:]}")
        return AirflowRun(reply["result"], output)

    def mark(self) -> int:
        """A position in the child's output, for :meth:`wait_for_output`."""
        with self._lock:
            return len(self._lines)

    def wait_for_output(self, text: str, since: int, timeout: float) -> bool:
        """Wait until ``text`` appears in the output after ``since``; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if any(text in line for line in self._lines[since:]):
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """Stop the child: end of input, then SIGKILL to its process group after 10 s."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _running(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.dags.airflow_runner"],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._drain, args=(process,), daemon=True).start()
        self._process = process
        return process

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._lock:
                self._lines.append(line)

    def _output(self, start: int) -> str:
        time.sleep(0.2)  # Let the reader catch up with what was printed before the result.
        with self._lock:
            return "".join(self._lines[start:])


@dataclass(frozen=True)
class AirflowEnv:
    """One test's Airflow: its topics, artifact root and Kafka connection, and the server."""

    server: AirflowServer
    overrides: dict[str, str]
    env: dict[str, str]
    artifact_root: Path
    kafka: KafkaSettings
    group_id: str

    def with_settings(self, **values: str) -> AirflowEnv:
        """The same environment with more variables, e.g. ``DRIFTLOOP_COOLDOWN_SECONDS``."""
        return replace(self, overrides={**self.overrides, **values}, env={**self.env, **values})

    def inspect(self, timeout: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        """DagBag errors and warnings, the sensor's deferral and the consumer config."""
        return self.server.request("inspect", [], self.overrides, timeout).result

    def dag_test(
        self, conf: dict[str, Any] | None = None, timeout: float = RUN_TIMEOUT_S
    ) -> AirflowRun:
        """One ``dag.test()`` run of the retraining DAG, with ``conf`` as the run's conf."""
        return self.server.request("test", [conf], self.overrides, timeout)


@pytest.fixture(scope="package")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of an AIRFLOW_HOME of these tests' own, its SQLite DB initialised."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT_S,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return env


@pytest.fixture(scope="package")
def airflow_server(
    airflow_home: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowServer]:
    """The Airflow child process, stopped when the DAG tests are done."""
    server = AirflowServer(airflow_home, tmp_path_factory.mktemp("airflow-results"))
    yield server
    server.stop()


@pytest.fixture
def airflow_env(
    airflow_server: AirflowServer,
    kafka_env: dict[str, str],
    kafka_settings: KafkaSettings,
    artifact_root: Path,
) -> AirflowEnv:
    """Airflow's environment for one test: its topics, artifact root and Kafka connection.

    The connection is ``AIRFLOW_CONN_KAFKA_DEFAULT`` as the README documents it, with a
    consumer group of the test's own, so no test waits on another's group, and a
    short session timeout: ``dag.test()`` runs the sensor's trigger in process but,
    unlike the triggerer, never calls its ``cleanup()``, so the trigger's consumer
    is dropped without leaving the group, and the next run's consumer would wait out
    the default 45 s session timeout before the group gives it the partition.
    """
    group_id = f"driftloop-retraining-{uuid.uuid4().hex[:8]}"
    connection = {
        "conn_type": "kafka",
        "extra": {
            "bootstrap.servers": kafka_settings.bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 6000,
        },
    }
    overrides = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "DRIFTLOOP_ROWS_TOPIC": kafka_settings.rows_topic,
        "DRIFTLOOP_DRIFT_TOPIC": kafka_settings.drift_topic,
        "DRIFTLOOP_MODEL_UPDATES_TOPIC": kafka_settings.model_updates_topic,
        "DRIFTLOOP_DLQ_TOPIC": kafka_settings.dlq_topic,
        "DRIFTLOOP_ARTIFACT_ROOT": str(artifact_root),
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(connection),
    }
    return AirflowEnv(
        server=airflow_server,
        overrides=overrides,
        env={**kafka_env, "DRIFTLOOP_ARTIFACT_ROOT": str(artifact_root)},
        artifact_root=artifact_root,
        kafka=kafka_settings,
        group_id=group_id,
    )
