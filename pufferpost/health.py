"""Liveness and readiness for load balancers and orchestrators.

`/healthz` answers 200 as long as the process serves requests and touches nothing else.
`/readyz` checks what a request needs: PostgreSQL, Redis (rate limits, quota), the Celery broker,
and that every migration on disk is applied. Both are unauthenticated, never rate limited, and
left out of the request log (see `pufferpost.logs.QuietHealthFilter`).
"""

import logging
import time

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from pufferpost.queries import database_answers

logger = logging.getLogger(__name__)

_migrations_applied = False


@never_cache
@require_safe
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request):
    checks = {}
    for name, check in (
        ("database", _check_database),
        ("redis", _check_redis),
        ("broker", _check_broker),
        ("migrations", _check_migrations),
    ):
        started = time.monotonic()
        try:
            problem = check()
        except Exception as exc:  # any failure of a dependency means "not ready", said plainly
            problem = f"{type(exc).__name__}: {exc}".strip()[:300]
        checks[name] = {"ok": problem is None, "ms": round((time.monotonic() - started) * 1000, 1)}
        if problem is not None:
            checks[name]["error"] = problem
            if name == "database":
                # Without the database the migration state cannot be read either.
                checks["migrations"] = {"ok": False, "ms": 0.0, "error": "database unreachable"}
                break
    failed = [name for name, result in checks.items() if not result["ok"]]
    if failed:
        logger.warning("not ready: %s", ", ".join(f"{n} ({checks[n]['error']})" for n in failed))
    body = {"status": "ready" if not failed else "not_ready", "failed": failed, "checks": checks}
    return JsonResponse(body, status=200 if not failed else 503)


def _check_database():
    database_answers(connections[DEFAULT_DB_ALIAS])
    return None


def _ping(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def _check_redis():
    _ping(settings.REDIS_URL)
    return None


def _check_broker():
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        _ping(url)
        return None
    from pufferpost.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
    return None


def _check_migrations():
    """Unapplied migrations on disk → not ready. Cached once true: a process's code never changes."""
    global _migrations_applied
    if _migrations_applied:
        return None
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        return f"{len(plan)} unapplied migration(s): {names}"
    _migrations_applied = True
    return None
