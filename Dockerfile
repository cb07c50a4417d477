# One image for every PufferPost process: web (gunicorn), the Celery workers and beat, inbound SMTP
# (bounces and complaints) and SMTP submission; compose.yaml picks the command. The base is any
# Debian bookworm with Python 3.11 and its venv module: the official slim image by default, or the
# Debian-built one `make compose-check` makes (no public image registry is reachable there).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# An index mirror, or a wheelhouse (PIP_NO_INDEX=1 and PIP_FIND_LINKS), when the builder has one
# (make compose-check serves the host pip's wheels on loopback).
ARG PIP_INDEX_URL
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
COPY requirements.txt /tmp/requirements.txt
# Wheels where they exist; the few pure-Python sdists build with the venv's own setuptools, so the
# image needs no compiler.
RUN python3.11 -m venv /opt/pufferpost/venv \
 && /opt/pufferpost/venv/bin/pip install --prefer-binary -r /tmp/requirements.txt

FROM ${BASE_IMAGE}
ENV PATH=/opt/pufferpost/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=pufferpost.settings \
    PUFFERPOST_VAR_DIR=/var/lib/pufferpost \
    PUFFERPOST_STATIC_ROOT=/opt/pufferpost/static \
    PUFFERPOST_SERVE_STATIC=true \
    PROMETHEUS_MULTIPROC_DIR=/tmp/pufferpost-metrics
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/pufferpost --shell /usr/sbin/nologin pufferpost \
 && mkdir -p /var/lib/pufferpost && chown pufferpost:pufferpost /var/lib/pufferpost
COPY --from=build /opt/pufferpost/venv /opt/pufferpost/venv
WORKDIR /app
# The code stays root-owned: the processes can read it, never change it.
COPY . /app
# The admin's and the docs page's files, served by the web process (PUFFERPOST_SERVE_STATIC).
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
 && chmod 0755 /app/deploy/docker/entrypoint
USER pufferpost
EXPOSE 8000 2525
ENTRYPOINT ["/app/deploy/docker/entrypoint"]
# Liveness of the web process (GET /healthz); compose.yaml swaps in a check of its own for the
# other services.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "/app/deploy/docker/healthcheck.py"]
CMD ["gunicorn", "pufferpost.wsgi", "--worker-class", "gthread", "--workers", "4", "--threads", "8", "--bind", "0.0.0.0:8000"]
