"""docker-compose.yaml, the Dockerfile and the README's Docker section agree with each other.

No Docker engine is needed: the compose file is checked against the Compose
specification's schema (check-jsonschema's vendored copy) and for the promises the
README makes about it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
README = REPO / "README.md"
POM = REPO / "broker" / "pom.xml"

CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|CREDENTIAL", re.IGNORECASE)
REQUIRED_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:(?P<password>\$\{[^}]*\}|[^@\s]*)@")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, from either of the two forms compose allows."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Each dependency of a service with its condition (``service_started`` for the list form)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → source of each of a service's volumes (short or long form)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            mounts[rest.split(":")[0]] = source
        else:
            mounts[volume["target"]] = volume.get("source", "")
    return mounts


def _readme_docker_section() -> str:
    text = README.read_text()
    match = re.search(r"^## With Docker\n(?P<body>.*?)^## ", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## With Docker' section followed by another '## ' section"
    return match.group("body")


def _readme_services() -> set[str]:
    """The `names` in the first column of the Docker section's table headed ``| service |``."""
    names: set[str] = set()
    in_table = False
    for line in _readme_docker_section().splitlines():
        if re.match(r"^\|\s*service\s*\|", line):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and (match := re.match(r"^\|\s*`([^`]+)`\s*\|", line)):
            names.add(match.group(1))
    return names


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    instructions: list[str] = []
    current = ""
    heredoc_end = None
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if heredoc_end is not None:  # a here-document's body: content, not instructions
            if stripped == heredoc_end:
                heredoc_end = None
            continue
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if heredoc := re.search(r"<<-?[\"']?(\w+)", stripped):
            heredoc_end = heredoc.group(1)
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        instructions.append(current + stripped)
        current = ""
    return instructions


# -- the file itself ------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    result = _check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = _compose()
    broken["services"]["consumer"]["depends_on"] = {"kafka": {"condition": "when_ready"}}
    broken["services"]["producer"]["restart_policy"] = "always"
    path = tmp_path / "docker-compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = _check_jsonschema(path)
    assert result.returncode != 0, result.stdout


def test_every_depends_on_target_is_a_service() -> None:
    services = _services()
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, f"{name} depends on {target!r}, which is no service"
            assert target != name, f"{name} depends on itself"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", (
                    f"{name} waits for {target} to complete, but {target} restarts"
                )


def test_every_service_declares_whether_it_restarts() -> None:
    # One-shot services say "no"; the others come back after a crash or a reboot.
    for name, service in _services().items():
        assert service.get("restart") in ("no", "unless-stopped", "always"), name


# -- secrets -----------------------------------------------------------------------


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, service in _services().items():
        for key, value in _environment(service).items():
            # A *_FILE variable names where a secret lies, not the secret.
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                assert REQUIRED_REFERENCE.fullmatch(value), (
                    f"{name}: {key} must be a required variable from .env, "
                    f"like ${{{key}:?message}}, not {value!r}"
                )
            for match in URL_PASSWORD.finditer(value):
                assert REQUIRED_REFERENCE.fullmatch(match.group("password")), (
                    f"{name}: {key} holds a URL with a literal password"
                )


def test_secret_variables_have_no_default() -> None:
    text = COMPOSE_FILE.read_text()
    defaults = re.findall(r"\$\{([A-Za-z0-9_]+):?-", text)
    assert not [d for d in defaults if SECRET_NAME.search(d)], defaults


def test_every_required_variable_is_documented_empty_in_env_example() -> None:
    required = {m.group("name") for m in REQUIRED_REFERENCE.finditer(COMPOSE_FILE.read_text())}
    assert required, "the compose file takes no variable from .env"
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    assert required <= example.keys(), f"missing from .env.example: {required - example.keys()}"
    # A value in the example would let `cp .env.example .env` start with known secrets.
    filled = {name: value for name, value in example.items() if value.strip()}
    assert not filled, f".env.example must leave secrets empty: {filled}"


def test_published_ports_are_bound_to_localhost() -> None:
    for name, service in _services().items():
        for port in service.get("ports") or []:
            host_ip = port.split(":")[0] if isinstance(port, str) else port.get("host_ip")
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond this host"


# -- the loop's wiring -------------------------------------------------------------


def test_artifact_volume_is_mounted_wherever_the_artifact_root_is_set() -> None:
    compose = _compose()
    named_volumes = set(compose.get("volumes") or {})
    roots = {}
    for name, service in compose["services"].items():
        root = _environment(service).get("DRIFTLOOP_ARTIFACT_ROOT")
        if root is None:
            continue
        source = _volume_mounts(service).get(root)
        assert source in named_volumes, (
            f"{name} sets DRIFTLOOP_ARTIFACT_ROOT={root} but mounts no named volume there"
        )
        roots[name] = (root, source)
    assert {"consumer", "model-init", "airflow-scheduler", "airflow-triggerer"} <= roots.keys()
    assert len(set(roots.values())) == 1, f"services disagree on the artifact root: {roots}"


def test_airflow_components_share_one_configuration() -> None:
    services = _services()
    airflow = {
        name: _environment(service)
        for name, service in services.items()
        if "AIRFLOW__CORE__EXECUTOR" in _environment(service)
    }
    assert {
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    } <= airflow.keys()
    reference = airflow["airflow-scheduler"]
    for name, env in airflow.items():
        shared = {k: v for k, v in env.items() if k in reference}
        assert shared == reference, f"{name}'s Airflow settings differ from the scheduler's"
    assert reference["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert reference["AIRFLOW__CORE__DAGS_FOLDER"] == "/app/dags"
    assert "redis" not in services


def test_airflow_kafka_connection_has_auto_commit_off_and_reads_committed() -> None:
    env = _environment(_services()["airflow-triggerer"])
    connection = json.loads(env["AIRFLOW_CONN_KAFKA_DEFAULT"])
    assert connection["conn_type"] == "kafka"
    assert connection["extra"]["enable.auto.commit"] is False
    # Drift events are written in transactions: an aborted one must not wake the DAG.
    assert connection["extra"]["isolation.level"] == "read_committed"
    assert connection["extra"]["bootstrap.servers"] == env["KAFKA_BOOTSTRAP_SERVERS"]


def test_every_kafka_connection_we_document_or_start_reads_committed(tmp_path: Path) -> None:
    from broker.settings import KafkaSettings
    from demo.stack import airflow_env

    documented = [
        text
        for path in (README, REPO / "dags" / "README.md")
        for text in re.findall(r"AIRFLOW_CONN_KAFKA_DEFAULT[=`|' ]+(\{.*\}\})", path.read_text())
    ]
    demo = airflow_env(tmp_path, 8080, KafkaSettings())["AIRFLOW_CONN_KAFKA_DEFAULT"]
    connections = [json.loads(text) for text in [*documented, demo]]
    assert len(connections) == 3, documented
    for connection in connections:
        assert connection["extra"]["isolation.level"] == "read_committed", connection


def test_two_consumer_replicas_each_with_an_identity_of_its_own() -> None:
    consumer = _services()["consumer"]
    assert consumer["deploy"]["replicas"] == 2
    # One instance id, host name or container name for all replicas would make them
    # one static member: each would fence the other out of the group.
    assert "DRIFTLOOP_INSTANCE_ID" not in _environment(consumer)
    assert "hostname" not in consumer and "container_name" not in consumer
    assert _environment(consumer)["DRIFTLOOP_ROWS_PARTITIONS"] == "4"


def test_api_server_health_check_asks_for_the_version() -> None:
    test = _services()["airflow-apiserver"]["healthcheck"]["test"]
    assert "/api/v2/version" in " ".join(test)


def test_kafka_image_matches_the_local_broker_version() -> None:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(POM).getroot().findtext("m:properties/m:kafka.version", namespaces=ns)
    assert version, "broker/pom.xml has no kafka.version"
    images = [s["image"] for s in _services().values() if "apache/kafka" in s.get("image", "")]
    assert images, "no service runs the apache/kafka image"
    assert all(image == f"apache/kafka:{version}" for image in images), (images, version)


def test_kafka_sets_its_single_node_settings_explicitly() -> None:
    env = _environment(_services()["kafka"])
    expected = {
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    }
    assert {k: env.get(k) for k in expected} == expected
    for key in ("CLUSTER_ID", "KAFKA_NODE_ID", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS"):
        assert env.get(key), f"kafka: {key} is not set"


def test_topic_service_creates_every_topic() -> None:
    services = _services()
    env = _environment(services["consumer"])
    script = " ".join(services["kafka-topics"]["command"])
    topic_settings = [
        "DRIFTLOOP_ROWS_TOPIC",
        "DRIFTLOOP_DRIFT_TOPIC",
        "DRIFTLOOP_MODEL_UPDATES_TOPIC",
        "DRIFTLOOP_DLQ_TOPIC",
        "DRIFTLOOP_LABELS_TOPIC",
    ]
    assert [env[s] for s in topic_settings] == [
        "rows",
        "drift-events",
        "model-updates",
        "rows-dlq",
        "labels",
    ]
    topics_env = _environment(services["kafka-topics"])
    for setting in topic_settings:
        assert topics_env[setting] == env[setting]
        assert f"$${setting}" in script, f"kafka-topics does not create ${setting}"


def test_topic_service_creates_the_rows_topic_with_4_partitions() -> None:
    service = _services()["kafka-topics"]
    assert _environment(service)["DRIFTLOOP_ROWS_PARTITIONS"] == "4"
    script = service["command"][-1].replace("\\\n", " ")
    rows = [line for line in script.splitlines() if '--topic "$$DRIFTLOOP_ROWS_TOPIC"' in line]
    assert len(rows) == 1 and "--create" in rows[0], rows
    assert '--partitions "$$DRIFTLOOP_ROWS_PARTITIONS"' in rows[0]
    assert "--if-not-exists" in rows[0]  # an existing topic keeps its partitions


# -- the README and the Dockerfile --------------------------------------------------


@pytest.mark.parametrize("direction", ["readme_to_compose", "compose_to_readme"])
def test_readme_describes_exactly_the_compose_services(direction: str) -> None:
    named = _readme_services()
    defined = set(_services())
    assert named, "the README's Docker section has no table of `service` names"
    if direction == "readme_to_compose":
        assert named <= defined, f"README names services compose lacks: {named - defined}"
    else:
        assert defined <= named, f"README does not describe: {defined - named}"


def test_readme_tells_how_to_start_watch_and_stop() -> None:
    section = _readme_docker_section()
    for command in (
        "cp .env.example .env",
        "docker compose up -d",
        "docker compose logs -f consumer",
        "docker compose down",
        "docker compose down -v",
    ):
        assert command in section, f"the README's Docker section lacks `{command}`"


def test_dockerfile_installs_from_the_lock_before_copying_the_code() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0].startswith("FROM python:3.11-slim"), instructions[0]
    copy_lock = next(
        (
            i
            for i, line in enumerate(instructions)
            if re.match(r"COPY\s+requirements\.lock\s", line)
        ),
        None,
    )
    install = next(
        (
            i
            for i, line in enumerate(instructions)
            if line.startswith("RUN")
            and "--require-hashes" in line
            and re.search(r"-r\s+\S*requirements\.lock", line)
        ),
        None,
    )
    copy_code = next(
        (i for i, line in enumerate(instructions) if re.match(r"COPY\s+\.\s", line)), None
    )
    assert copy_lock is not None, "the Dockerfile does not copy requirements.lock"
    assert install is not None, "the Dockerfile does not install with --require-hashes -r ...lock"
    assert copy_code is not None, "the Dockerfile does not copy the project"
    assert copy_lock < install < copy_code, "dependencies must be installed before the code"
    project_install = re.compile(r"pip install(\s+--?\S+)*\s+--no-deps(\s+--?\S+)*\s+\.(\s|$)")
    assert any(project_install.search(line) for line in instructions), (
        "no `pip install --no-deps .`"
    )
    assert any("python -m data prepare" in line for line in instructions)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"


def test_dockerignore_keeps_secrets_out_of_the_build() -> None:
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored
    assert ".venv" in ignored
