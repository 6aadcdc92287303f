# syntax=docker/dockerfile:1
# driftloop's image: the producer, the consumer, model training and every Airflow
# component (api-server, scheduler, dag-processor, triggerer) run from it.
# docker-compose.yaml builds it; by hand: `docker build -t driftloop:local .`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow

# Dependencies first, from the lock alone, so a code change reuses this layer. The
# lock includes the Postgres drivers Airflow needs here (pyproject's `postgres` extra).
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --require-hashes --only-binary=:all: -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# The user every service runs as. The directories that named volumes mount over
# are created here, owned by it, so fresh volumes start out writable.
RUN groupadd --gid 50000 driftloop \
    && useradd --uid 50000 --gid driftloop --create-home --shell /bin/bash driftloop \
    && mkdir -p /var/lib/driftloop /opt/airflow/logs /opt/airflow/auth \
    && chown -R driftloop:driftloop /var/lib/driftloop /opt/airflow

# The project itself (code, DAGs), without dependencies: the lock provided them.
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info \
    && pip check \
    && python -m data prepare

USER driftloop
CMD ["python", "-m", "consumer", "--help"]
