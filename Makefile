# driftloop: every command a newcomer, CI and the demo need.
# `make test` and `make demo` set everything up on first use.

PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
UV          := $(VENV)/bin/uv
UV_VERSION  := 0.13.9
STAMP       := $(VENV)/.installed

.PHONY: setup demo demo-explore test test-unit lint typecheck broker-start broker-stop broker-status bench bench-loop bench-scale bench-soak lock clean

setup: $(STAMP) data/iris.csv

# The lock pins every package (with hashes); uv installs it exactly.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync --quiet --python $(PY) --require-hashes requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $(STAMP)

data/iris.csv: | $(STAMP)
	$(PY) -m data prepare

# Every test, against a real Kafka broker the test session starts on a free port.
test: setup
	$(PY) -m broker fetch
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest tests/unit

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

broker-start: setup
	$(PY) -m broker start

broker-stop:
	$(PY) -m broker stop

broker-status:
	$(PY) -m broker status

# The whole loop on this machine, narrated: broker, champion, Airflow, consumer, producer.
demo: setup
	$(PY) -m broker fetch
	$(PY) -m demo $(DEMO_ARGS)

# The same, left running at the end for exploring (Ctrl-C stops it all).
demo-explore: setup
	$(PY) -m broker fetch
	$(PY) -m demo --keep-running $(DEMO_ARGS)

bench: setup
	$(PY) -m broker fetch
	$(PY) -m bench

# How fast the loop reacts under airflow standalone: drift event → retrain, → consumer switch.
bench-loop: setup
	$(PY) -m broker fetch
	$(PY) -m bench.loop_latency

# Consumers as processes: SIGKILL -> first window after a restart, rows/s per partition and process.
bench-scale: setup
	$(PY) -m broker fetch
	$(PY) -m bench.scale

# One consumer over 10 million rows: resident memory and the archive every million rows.
bench-soak: setup
	$(PY) -m broker fetch
	$(PY) -m bench.soak

# Re-resolve requirements.lock after changing pyproject.toml's dependencies.
lock:
	$(UV) pip compile pyproject.toml --extra dev --extra postgres --python-version 3.11 \
		--generate-hashes -o requirements.lock

clean:
	-$(PY) -m broker stop
	rm -rf var
