# make compose-check only: PostgreSQL and Redis from Debian's own packages, on the Debian-built base
# image (no public image registry is reachable where the check runs; an install uses the official
# postgres and redis images that compose.yaml names).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data && chown postgres:postgres /var/lib/postgresql/data
COPY deploy/compose-check/postgres-standin /usr/local/bin/postgres-standin
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
