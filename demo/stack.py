"""The whole loop's processes on one machine: broker, Airflow standalone, consumer, producer.

Used by the demo, the end-to-end test and the loop-latency benchmark, so all
three start the loop the same way. Every process is started in a session of
its own and stopped as a group, so nothing outlives :meth:`Stack.close`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from broker.local import DEFAULT_LIB_DIR, LocalBroker, free_port
from broker.settings import KafkaSettings
from broker.topics import ensure_loop_topics

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "model_drift_detection_and_retraining"


class StackError(RuntimeError):
    """A process of the loop failed to start or stopped early; the message says which and why."""


class Process:
    """A child process in its own session; its output lines are kept and optionally echoed."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        log: Path,
        echo: TextIO | None = None,
        show: Callable[[str], bool] = lambda line: True,
    ) -> None:
        self.name = name
        self.lines: list[str] = []
        self.log = log
        self._echo = echo
        self._show = show
        log.parent.mkdir(parents=True, exist_ok=True)
        self.popen = subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with open(self.log, "a") as log:
            for raw in self.popen.stdout:
                line = raw.rstrip("\n")
                self.lines.append(line)
                log.write(raw)
                log.flush()
                if self._echo is not None and self._show(line):
                    self._echo.write(f"[{self.name}] {line}\n")
                    self._echo.flush()

    def matching(self, pattern: str) -> list[str]:
        """Output lines so far that match ``pattern`` (a regular expression)."""
        regex = re.compile(pattern)
        return [line for line in list(self.lines) if regex.search(line)]

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the process group, SIGKILL it after ``timeout``; returns the exit code."""
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait()
        # Children (e.g. Airflow's components) may outlive the group leader briefly.
        self.signal(signal.SIGKILL)
        self._reader.join(timeout=5)
        return self.popen.returncode


@dataclass
class Stack:
    """The loop's processes, configured to share one broker, one artifact root and topics.

    Parameters
    ----------
    workdir
        Holds the Airflow home, the process logs and (unless given) the artifact root.
    kafka
        Broker address and topic names; a local broker is started if none answers there.
    artifact_root
        Registry and window archive; ``workdir/var`` by default.
    airflow_port
        Port of Airflow's API server and UI, on 127.0.0.1.
    echo
        Where to echo the processes' output (None: keep it quiet, logs only).
    show
        Which output lines to echo: called with the process name and the line.
    """

    workdir: Path
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    artifact_root: Path | None = None
    airflow_port: int = 8080
    echo: TextIO | None = None
    show: Callable[[str, str], bool] = lambda name, line: True
    processes: list[Process] = field(default_factory=list)
    broker: LocalBroker | None = None

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.artifact_root is None:
            self.artifact_root = self.workdir / "var"
        self.artifact_root = Path(self.artifact_root).resolve()

    # -- environment --------------------------------------------------------------

    @property
    def airflow_home(self) -> Path:
        return self.workdir / "airflow"

    def env(self) -> dict[str, str]:
        """The environment every process of the loop gets."""
        env = dict(os.environ)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
                "DRIFTLOOP_ROWS_TOPIC": self.kafka.rows_topic,
                "DRIFTLOOP_DRIFT_TOPIC": self.kafka.drift_topic,
                "DRIFTLOOP_MODEL_UPDATES_TOPIC": self.kafka.model_updates_topic,
                "DRIFTLOOP_DLQ_TOPIC": self.kafka.dlq_topic,
                "DRIFTLOOP_LABELS_TOPIC": self.kafka.labels_topic,
                "DRIFTLOOP_ARTIFACT_ROOT": str(self.artifact_root),
            }
        )
        env.update(airflow_env(self.airflow_home, self.airflow_port, self.kafka))
        return env

    # -- processes ----------------------------------------------------------------

    def ensure_broker(self) -> None:
        """Use the broker at the bootstrap address, or start a local one there."""
        host, _, port = self.kafka.servers[0].rpartition(":")
        if not port_open(host, int(port)):
            if host not in ("localhost", "127.0.0.1"):
                raise StackError(f"no Kafka broker answers at {self.kafka.bootstrap_servers}")
            self.broker = LocalBroker(
                home=self.workdir / "broker", port=int(port), lib_dir=REPO / DEFAULT_LIB_DIR
            )
            self.broker.start()
        ensure_loop_topics(self.kafka)

    def start(self, name: str, args: list[str]) -> Process:
        """Start ``python -m <args>`` (or a program given by absolute path) in the stack."""
        cmd = [sys.executable, "-m", *args] if not args[0].startswith("/") else args
        process = Process(
            name,
            cmd,
            self.env(),
            self.workdir / "logs" / f"{name}.log",
            self.echo,
            lambda line: self.show(name, line),
        )
        self.processes.append(process)
        return process

    def start_airflow(self, timeout: float = 240.0) -> AirflowClient:
        """Start ``airflow standalone`` and return a REST client once the API answers."""
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        airflow = str(Path(sys.executable).parent / "airflow")
        process = self.start("airflow", [airflow, "standalone"])
        client = AirflowClient(self.airflow_port, self.airflow_home)
        wait_until(
            lambda: process.matching("Airflow is ready") and client.login(),
            timeout,
            "Airflow standalone to be ready",
            process,
        )
        return client

    def close(self) -> None:
        """Stop every process the stack started, newest first, and a broker it started."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def airflow_env(home: Path, port: int, kafka: KafkaSettings) -> dict[str, str]:
    """Airflow settings for running the retraining DAG locally against ``kafka``."""
    connection = {
        "conn_type": "kafka",
        "extra": {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": "driftloop-retraining",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Drift events are written in transactions: only committed ones wake the DAG.
            "isolation.level": "read_committed",
        },
    }
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__TRIGGERER__DEFAULT_CAPACITY": "50",
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(connection),
        "NO_COLOR": "1",
    }


class AirflowClient:
    """The few calls of Airflow's REST API (v2) the loop needs, with the standalone login."""

    def __init__(self, port: int, home: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.home = home
        self.token: str | None = None

    def credentials(self) -> tuple[str, str] | None:
        """The standalone admin's user name and generated password, once written."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        try:
            users = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        user, password = next(iter(users.items()))
        return user, password

    def login(self) -> bool:
        creds = self.credentials()
        if creds is None:
            return False
        try:
            answer = self._request(
                "POST", "/auth/token", {"username": creds[0], "password": creds[1]}, auth=False
            )
        except (urllib.error.URLError, OSError):
            return False
        self.token = answer["access_token"]
        return True

    def dag_runs(self, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"])

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id)}/taskInstances"
        return list(self._request("GET", path)["task_instances"])

    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth and self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")


def wait_until(condition: Callable[[], Any], timeout: float, what: str, *watch: Process) -> Any:
    """Poll ``condition`` until truthy; fail if it times out or a watched process exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for process in watch:
            if not process.running:
                tail = "\n".join(process.lines[-15:])
                raise StackError(
                    f"{process.name} exited ({process.popen.returncode}) while waiting for "
                    f"{what}; its last lines:\n{tail}"
                )
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def worth_showing(name: str, line: str) -> bool:
    """The lines of each process a person watching the loop wants to see.

    The consumer's windows, alerts and switches; Airflow's own banner; errors.
    """
    if "ERROR" in line or "Traceback" in line or "error:" in line:
        return True
    if name == "consumer":
        return any(key in line for key in (" window=", "DRIFT", "MODEL SWITCH", "dead-letter"))
    if name == "airflow":
        return line.startswith("standalone |") and "Password" not in line
    return False


__all__ = [
    "DAG_ID",
    "AirflowClient",
    "Process",
    "Stack",
    "StackError",
    "free_port",
    "port_open",
    "wait_until",
    "worth_showing",
]
