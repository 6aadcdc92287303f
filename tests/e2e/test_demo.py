"""`python -m demo`, shortened: narrates the loop, writes the timeline, leaves nothing running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from broker.local import LocalBroker, free_port
from demo.stack import port_open


def test_demo_narrates_the_loop_and_cleans_up(kafka_broker: LocalBroker, tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo",
            "--workdir",
            str(workdir),
            "--airflow-port",
            str(port),
            "--windows-after-switch",
            "3",
            "--timeout",
            "400",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    narration = [line for line in out.splitlines() if line.startswith("==> ")]
    for step in (
        "trained the first model",
        f"Airflow UI: http://127.0.0.1:{port}  login: admin / ",
        "windows without drift",
        "drift alert",
        "drift episode resolved",
        "took a drift event and is training a challenger",
        "new champion v2",
        "the consumer switched to the new champion",
        "summary: ",
        "stopping everything the demo started",
    ):
        assert any(step in line for line in narration), f"no narration of {step!r}:\n{out}"
    # The demo used topics of its own on the broker it found.
    assert "-demo-" in narration[0]
    summary = next(line for line in narration if "summary: " in line)
    assert "v1 (initial), v2 (promoted), champion v2" in summary
    # The rows topic has 4 partitions, each windowed on its own: at most one episode per
    # partition, and the new champion resolved every one that opened.
    assert "topics rows-demo-" in narration[0] and "(4 partitions)" in narration[0]
    episodes = re.search(r"drift episodes: (\d+) onset, (\d+) resolved", summary)
    assert episodes, summary
    onsets, resolved = int(episodes.group(1)), int(episodes.group(2))
    assert 1 <= onsets <= 4 and resolved == onsets, summary
    png = workdir / "var" / "reports" / "drift-timeline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"drift timeline: {png}" in out
    assert not port_open("127.0.0.1", port), "Airflow is still serving after the demo"
    leftovers = subprocess.run(
        ["pgrep", "-f", str(workdir)], capture_output=True, text=True
    ).stdout.split()
    assert leftovers == [], f"processes of the demo still running: {leftovers}"
