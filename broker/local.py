"""A single-node Apache Kafka broker (KRaft) on 127.0.0.1, from jars Maven fetches.

The broker's jars come from Maven Central through ``broker/pom.xml`` on first use
and are cached under the jar directory (and in ``~/.m2``). Each broker has a home
directory holding its ``server.properties``, data, log and pid file, so several
brokers (the demo's, a test session's) can run side by side on different ports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from broker.errors import LocalBrokerError

logger = logging.getLogger(__name__)

POM = Path(__file__).with_name("pom.xml")
DEFAULT_LIB_DIR = Path("var/broker/lib")
DEFAULT_HOME = Path("var/broker/local")
_READY_MARKER = ".fetched"


def fetch_jars(lib_dir: Path = DEFAULT_LIB_DIR) -> Path:
    """Gather the broker's runtime jars into ``lib_dir`` with Maven, once.

    Parameters
    ----------
    lib_dir
        Where the jars go. A marker file records a complete fetch, so a
        fetch interrupted half-way is redone on the next call.

    Returns
    -------
    Path
        ``lib_dir``, holding the jars.

    Raises
    ------
    LocalBrokerError
        When Maven or Java is missing, or Maven cannot resolve the jars.
    """
    lib_dir = Path(lib_dir)
    marker = lib_dir / _READY_MARKER
    if marker.exists() and marker.read_text() == POM.read_text():
        return lib_dir
    _require("java", "Java 17 or later is needed to run the Kafka broker")
    mvn = _require("mvn", "Maven is needed to fetch the Kafka broker's jars from Maven Central")
    if lib_dir.exists():
        shutil.rmtree(lib_dir)
    lib_dir.mkdir(parents=True)
    logger.info("fetching Kafka broker jars with Maven into %s", lib_dir)
    cmd = [
        mvn,
        "--batch-mode",
        "--quiet",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={lib_dir.resolve()}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise LocalBrokerError(
            "Maven could not fetch the Kafka broker's jars (is Maven Central reachable?):\n" + tail
        )
    marker.write_text(POM.read_text())
    return lib_dir


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBroker:
    """One Kafka broker process, combined broker and controller, on 127.0.0.1.

    Parameters
    ----------
    home
        Directory for this broker's configuration, data, log and pid file.
    port
        The client (PLAINTEXT) port.
    controller_port
        The KRaft controller port; a free one is chosen when not given.
    lib_dir
        Where the jars are (fetched there when missing).
    heap
        The JVM's maximum heap, as ``-Xmx`` takes it.

    Examples
    --------
    >>> broker = LocalBroker(Path("/tmp/b"), port=19092)
    >>> broker.bootstrap_servers
    '127.0.0.1:19092'
    """

    def __init__(
        self,
        home: Path = DEFAULT_HOME,
        port: int = 9092,
        controller_port: int | None = None,
        lib_dir: Path = DEFAULT_LIB_DIR,
        heap: str = "512m",
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        self.home = Path(home)
        self.port = port
        self.controller_port = controller_port
        self.lib_dir = Path(lib_dir)
        self.heap = heap

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def _pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def _properties(self) -> Path:
        return self.home / "server.properties"

    def pid(self) -> int | None:
        """The pid of this home's running broker, or None when none runs."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        # The pid may have been reused by an unrelated process since.
        if b"kafka.Kafka" not in cmdline or str(self._properties).encode() not in cmdline:
            return None
        return pid

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker and return once it answers clients.

        Raises
        ------
        LocalBrokerError
            With the reason: Java or Maven missing, a port taken, the jars not
            fetchable, the process exiting, or no answer within ``timeout``.
        """
        if self.pid() is not None:
            raise LocalBrokerError(
                f"a broker from {self.home} is already running (pid {self.pid()})"
            )
        java = _require("java", "Java 17 or later is needed to run the Kafka broker")
        if self.controller_port is None:
            self.controller_port = free_port()
        for port in (self.port, self.controller_port):
            if not _port_free(port):
                raise LocalBrokerError(
                    f"port {port} on 127.0.0.1 is taken; stop what uses it or choose another port"
                )
        fetch_jars(self.lib_dir)
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        classpath = f"{self.lib_dir.resolve()}/*"
        self._format_storage(java, classpath)
        cmd = [
            java,
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self._properties),
        ]
        with open(self.log_file, "ab") as log:
            # A session of its own: the broker outlives `python -m broker start`
            # and a Ctrl-C meant for the caller's terminal.
            process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._pid_file.write_text(str(process.pid))
        try:
            self._wait_ready(process, timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("Kafka broker up at %s (pid %d)", self.bootstrap_servers, process.pid)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``).

        Returns
        -------
        bool
            True when a broker was running and has stopped.
        """
        pid = self.pid()
        self._pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return True

    @contextlib.contextmanager
    def running(self, timeout: float = 60.0) -> Iterator[LocalBroker]:
        """Run the broker for the duration of a ``with`` block."""
        self.start(timeout)
        try:
            yield self
        finally:
            self.stop()

    def _write_properties(self) -> None:
        data_dir = (self.home / "data").resolve()
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Consumer-group joins settle at once instead of after 3 s.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        self._properties.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def _format_storage(self, java: str, classpath: str) -> None:
        data_dir = self.home / "data"
        if (data_dir / "meta.properties").exists():
            # Formatted before: the controller address is kept in the data, so a
            # restart on another controller port needs fresh storage.
            if (self.home / "controller.port").read_text() == str(self.controller_port):
                return
            shutil.rmtree(data_dir)
        cmd = [
            java,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            f"--cluster-id={_cluster_id()}",
            "-c",
            str(self._properties),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalBrokerError(
                "formatting the broker's KRaft storage failed:\n" + result.stdout + result.stderr
            )
        (self.home / "controller.port").write_text(str(self.controller_port))

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalBrokerError(
                    f"the broker exited with code {process.returncode} while starting; "
                    f"the end of {self.log_file}:\n{self._log_tail()}"
                )
            if _answers(self.port):
                return
            time.sleep(0.2)
        raise LocalBrokerError(
            f"the broker did not answer on port {self.port} within {timeout:.0f} s; "
            f"the end of {self.log_file}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _require(program: str, why: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise LocalBrokerError(f"{program!r} is not on PATH: {why}")
    return path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _answers(port: int) -> bool:
    """True once the broker serves metadata, not merely accepts connections."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        if sock.connect_ex(("127.0.0.1", port)) != 0:
            return False
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=f"127.0.0.1:{port}",
            request_timeout_ms=2000,
            bootstrap_timeout_ms=1000,
        )
    except (KafkaError, OSError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
