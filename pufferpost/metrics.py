"""Prometheus metrics: the series every process writes, and the `/metrics` endpoint that reads them.

Counters and histograms are defined here, once, and incremented where things happen (request
middleware, delivery outcomes, webhook attempts, DNS checks). Live values (queue depths, the age
of the oldest waiting message) are read at scrape time by collectors other apps register with
`scrape_collector`, so nothing polls in the background.

Processes: with PROMETHEUS_MULTIPROC_DIR set (it must be in the environment before the process
starts), gunicorn workers and Celery prefork children each write their own files there, and
`/metrics` on any web worker adds them up (prometheus_client's multiprocess mode). The dead-process
hooks are in gunicorn.conf.py (`child_exit`) and pufferpost.celery (`worker_process_shutdown`).

The processes that are not the web (Celery workers, beat, the SMTP servers) serve their own
series with `serve_process_metrics` on PUFFERPOST_METRICS_LISTEN: every process of a container
writes to that container's directory (process ids of separate containers would collide in a
shared one), so each container is scraped on its own port (compose.yaml, deploy/prometheus/).

Access: with PUFFERPOST_METRICS_TOKEN set, `/metrics` wants `Authorization: Bearer <token>`;
without it, only direct loopback clients (no X-Forwarded-For) are answered. Everyone else gets
the same 404 as a path that does not exist. The process listeners follow the same rule.
"""

import hmac
import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from pufferpost.errors import not_found_view
from pufferpost.logs import fields

logger = logging.getLogger(__name__)
request_log = logging.getLogger("pufferpost.requests")

API_REQUESTS = Counter(
    "pufferpost_api_requests", "HTTP requests answered, by route pattern and status.", ["route", "method", "status"]
)
SEND_ACCEPT_SECONDS = Histogram(
    "pufferpost_send_accept_seconds",
    "Time to answer POST /v1/messages and /v1/messages/batch (validation, insert, enqueue).",
    ["endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MESSAGE_EVENTS = Counter("pufferpost_message_events", "Message timeline events recorded, by type.", ["type"])
DELIVERY_SECONDS = Histogram(
    "pufferpost_delivery_seconds",
    "Duration of one delivery try (connect to the final reply), by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
DELIVERY_OUTCOMES = Counter(
    "pufferpost_delivery_outcomes",
    "Delivery tries by outcome (delivered, deferred, bounced, errored, suppressed, unknown), bounce class and "
    "destination (PUFFERPOST_METRICS_DESTINATIONS, else `other`).",
    ["outcome", "bounce_class", "destination"],
)
WEBHOOK_ATTEMPTS = Counter(
    "pufferpost_webhook_attempts", "Webhook POSTs by outcome (succeeded, retrying, failed).", ["outcome"]
)
DNS_CHECKS = Counter("pufferpost_dns_checks", "Domain DNS checks by record and result.", ["check", "result"])

_scrape_collectors: list[Callable[[], Iterable[Metric]]] = []


def scrape_collector(function: Callable[[], Iterable[Metric]]) -> Callable[[], Iterable[Metric]]:
    """Register `function() -> metric families`, called at every scrape (keep it to a few cheap queries)."""
    _scrape_collectors.append(function)
    return function


def destination_label(domain: str) -> str:
    """A bounded label for a recipient domain: the configured providers by name, the rest `other`."""
    domain = (domain or "").lower()
    return domain if domain in settings.PUFFERPOST_METRICS_DESTINATIONS else "other"


class _Live:
    """Runs the registered scrape collectors; a failing one is reported, never fatal to the scrape."""

    def collect(self):
        up = GaugeMetricFamily(
            "pufferpost_scrape_collector_up", "1 if the collector answered at this scrape.", labels=["collector"]
        )
        for function in _scrape_collectors:
            name = getattr(function, "__name__", "collector")
            started = time.monotonic()
            try:
                families = list(function())
            except Exception:  # one unreachable dependency must not blank every other series
                logger.warning("metrics collector %s failed", name, exc_info=True)
                up.add_metric([name], 0)
                continue
            logger.debug("metrics collector %s took %.1f ms", name, (time.monotonic() - started) * 1000)
            up.add_metric([name], 1)
            yield from families
        yield up


class _Forward:
    """This process's own series (single-process mode: runserver, tests)."""

    def collect(self):
        yield from REGISTRY.collect()


def registry(*, live: bool = True) -> CollectorRegistry:
    """Every process's series (or this process's alone), plus, for the web, the scrape-time ones."""
    result = CollectorRegistry(auto_describe=False)
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory:
        multiprocess.MultiProcessCollector(result, path=directory)
    else:
        result.register(_Forward())
    if live:
        result.register(_Live())
    return result


def _may_read(authorization: str, forwarded: bool, remote_addr: str) -> bool:
    token = settings.PUFFERPOST_METRICS_TOKEN
    if token:
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    if forwarded:
        return False  # came through a proxy: the loopback address is the proxy's, not the client's
    try:
        return ipaddress.ip_address(remote_addr).is_loopback
    except ValueError:
        return False


def _allowed(request) -> bool:
    return _may_read(
        request.headers.get("Authorization", ""),
        "X-Forwarded-For" in request.headers,
        request.META.get("REMOTE_ADDR", ""),
    )


def _process_metrics_app(environ, start_response):
    allowed = _may_read(
        environ.get("HTTP_AUTHORIZATION", ""), "HTTP_X_FORWARDED_FOR" in environ, environ.get("REMOTE_ADDR", "")
    )
    if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or not allowed:
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found\n"]
    body = generate_latest(registry(live=False))
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
    return [body] if environ["REQUEST_METHOD"] == "GET" else []


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # scrapes stay out of the logs, as the web's do
        pass


def serve_process_metrics(name: str) -> WSGIServer | None:
    """Serve this process's series (all of its container's processes, in multiprocess mode) at
    GET /metrics on PUFFERPOST_METRICS_LISTEN, from a daemon thread; None when it is not set.
    Only what the processes counted: the scrape-time series (queues, pending mail) are the web's."""
    if not settings.PUFFERPOST_METRICS_LISTEN:
        return None
    ((host, port),) = settings.PUFFERPOST_METRICS_LISTEN
    server = make_server(host, port, _process_metrics_app, server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"{name}-metrics", daemon=True).start()
    logger.info("%s serves its metrics on http://%s:%d/metrics", name, host, server.server_port)
    return server


def metrics_view(request):
    if request.method not in ("GET", "HEAD") or not _allowed(request):
        return not_found_view(request)
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")


def route_label(route: str | None) -> str:
    """`v1/messages/(?P<id>[^/]+)/events$` → `/v1/messages/{id}/events` (DRF routers use regexes)."""
    if route is None:
        return "unmatched"
    return "/" + _GROUP.sub(lambda m: "{" + (m[1] or m[2]) + "}", route).replace("^", "").replace("$", "")


def _error_code(response) -> str | None:
    data = getattr(response, "data", None)
    if (
        data is None
        and response.get("Content-Type", "").startswith("application/json")
        and len(response.content) < 65536
    ):
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
    error = data.get("error") if isinstance(data, dict) else None
    return error.get("code") if isinstance(error, dict) else None


class MetricsMiddleware:
    """Counts every answered request by its route pattern (never the raw path: ids would explode the
    label set), times the send endpoints, and logs each refused request (4xx) once, with its
    envelope code and request id (Django's own 4xx line, which has neither, is filtered out)."""

    SEND_ROUTES = {"/v1/messages": "single", "/v1/messages/batch": "batch"}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = route_label(match.route if match is not None else None)
        if route in ("/healthz", "/readyz", "/metrics"):
            return response
        status = response.status_code
        API_REQUESTS.labels(route, request.method, str(status)).inc()
        if 400 <= status < 500:
            auth = getattr(request, "auth", None)
            request_log.warning(
                "refused %s %s",
                request.method,
                route,
                extra=fields(
                    status=status,
                    code=_error_code(response),
                    request_id=getattr(request, "request_id", None),
                    workspace=getattr(auth, "workspace_id", None),
                    path=request.path[:200],
                ),
            )
        endpoint = self.SEND_ROUTES.get(route)
        if endpoint and request.method == "POST":
            SEND_ACCEPT_SECONDS.labels(endpoint, str(response.status_code)).observe(time.perf_counter() - started)
        return response
