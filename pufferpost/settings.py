"""PufferPost settings: one module, every value from the environment (django-environ).

A bad value fails at start with ImproperlyConfigured, never as a 500 at the first request.
Every variable, its default and its meaning is listed in the README's configuration table.
"""

import hashlib
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from pufferpost.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("PUFFERPOST_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()


def _read(kind, name, *, positive=False, minimum=None, maximum=None, **kwargs):
    """Read one variable through django-environ; a malformed or out-of-range value is a loud start-up error."""
    try:
        value = getattr(env, kind)(name, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{name} is malformed: {exc}") from exc
    if positive and value <= 0:
        raise ImproperlyConfigured(f"{name} must be positive.")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}.")
    return value


def _secret_key():
    """The signing key: DJANGO_SECRET_KEY, else one generated once per install and kept in var/.

    Several hosts serving one installation must share it (tracking and unsubscribe links are
    signed with it), so multi-host deployments set DJANGO_SECRET_KEY explicitly.
    """
    configured = _read("str", "DJANGO_SECRET_KEY", default="")
    if configured:
        return configured
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def _host_ports(name, value, default_port):
    """Parse a comma-separated `host[:port]` list (IPv6 as `[::1]:53`)."""
    result = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        parsed = urlsplit(f"//{item}")
        try:
            port = parsed.port or default_port
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: bad port in {item!r}") from exc
        if not parsed.hostname:
            raise ImproperlyConfigured(f"{name}: no host in {item!r}")
        result.append((parsed.hostname, port))
    return result


DEBUG = _read("bool", "DJANGO_DEBUG", default=False)
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = _read("list", "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])


def _proxy_ssl_header():
    """`X-Forwarded-Proto` (or `Header-Name:value`): the header the TLS-terminating proxy sets.
    Only set it behind a proxy that always overwrites that header, or any client can claim https."""
    raw = _read("str", "DJANGO_SECURE_PROXY_SSL_HEADER", default="").strip()
    if not raw:
        return None
    name, _, value = raw.partition(":")
    name, value = name.strip(), (value.strip() or "https")
    if not name:
        raise ImproperlyConfigured("DJANGO_SECURE_PROXY_SSL_HEADER needs a header name, e.g. X-Forwarded-Proto.")
    return ("HTTP_" + name.upper().replace("-", "_"), value)


# Off by default (the development server and the tests speak plain http); production turns
# them on (see "Running in production"); `manage.py check --deploy` then has nothing to report.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()
SECURE_SSL_REDIRECT = _read("bool", "DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = _read("int", "DJANGO_SECURE_HSTS_SECONDS", default=0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _read("bool", "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = _read("bool", "DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = _read("bool", "DJANGO_SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = _read("bool", "DJANGO_CSRF_COOKIE_SECURE", default=False)
CSRF_TRUSTED_ORIGINS = _read("list", "DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Django's admin with PufferPost's site (pufferpost.admin_site): the console, named by the operator.
    "pufferpost.apps.PufferPostAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pufferpost",
    "domains",
    "senders",
    "templates_app",
    "messaging",
]

MIDDLEWARE = [
    "pufferpost.errors.RequestIdMiddleware",
    "pufferpost.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pufferpost.urls"
WSGI_APPLICATION = "pufferpost.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "pufferpost" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": _read("db_url", "DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/pufferpost"),
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://…).")
DATABASES["default"]["CONN_MAX_AGE"] = _read("int", "DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Test databases carry the checkout's path hash so parallel checkouts never share one.
DATABASES["default"]["TEST"] = {
    "NAME": f"test_{DATABASES['default']['NAME']}_{hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8]}"
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# The name the admin console shows in its header, page titles and login page (white-label).
PUFFERPOST_CONSOLE_NAME = " ".join(_read("str", "PUFFERPOST_CONSOLE_NAME", default="PufferPost console").split())
if not 0 < len(PUFFERPOST_CONSOLE_NAME) <= 80 or not PUFFERPOST_CONSOLE_NAME.isprintable():
    raise ImproperlyConfigured("PUFFERPOST_CONSOLE_NAME must be 1 to 80 printable characters.")

STATIC_URL = "static/"
# Where `manage.py collectstatic` puts the admin's and the docs page's files (the image collects
# them at build time into its own directory, outside the var volume).
STATIC_ROOT = Path(_read("str", "PUFFERPOST_STATIC_ROOT", default=str(VAR_DIR / "static")))
# Let the web process itself answer /static/ from STATIC_ROOT (the compose install, which has no
# separate file server); behind nginx or a CDN leave it off and serve STATIC_ROOT there.
PUFFERPOST_SERVE_STATIC = _read("bool", "PUFFERPOST_SERVE_STATIC", default=False)

PUFFERPOST_LOG_FORMAT = _read("str", "PUFFERPOST_LOG_FORMAT", default="text").lower()
if PUFFERPOST_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("PUFFERPOST_LOG_FORMAT must be text or json.")
LOGGING = logging_config(level=_read("str", "PUFFERPOST_LOG_LEVEL", default="INFO"), fmt=PUFFERPOST_LOG_FORMAT)

# Metrics (pufferpost.metrics). The multiprocess directory must also be in each process's
# environment before it starts; here it tells /metrics where to read every process's files.
PROMETHEUS_MULTIPROC_DIR = _read("str", "PROMETHEUS_MULTIPROC_DIR", default="")
PUFFERPOST_METRICS_TOKEN = _read("str", "PUFFERPOST_METRICS_TOKEN", default="")
# host:port where a Celery worker, beat or an SMTP server serves its own processes' series (the
# web serves its own at /metrics); empty: not served; port 0: any free port (logged). Same access
# rule as /metrics.
PUFFERPOST_METRICS_LISTEN = _host_ports(
    "PUFFERPOST_METRICS_LISTEN", _read("str", "PUFFERPOST_METRICS_LISTEN", default=""), 0
)
if len(PUFFERPOST_METRICS_LISTEN) > 1 or any(":" in host for host, _ in PUFFERPOST_METRICS_LISTEN):
    raise ImproperlyConfigured("PUFFERPOST_METRICS_LISTEN must be one IPv4 host:port, e.g. 127.0.0.1:9101.")
# Recipient domains that get their own `destination` label; every other domain is `other`, so the
# number of series stays bounded however many domains mail goes to.
PUFFERPOST_METRICS_DESTINATIONS = frozenset(
    domain.strip().lower()
    for domain in _read(
        "list",
        "PUFFERPOST_METRICS_DESTINATIONS",
        default=[
            "gmail.com",
            "googlemail.com",
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "yahoo.com",
            "aol.com",
            "icloud.com",
            "me.com",
            "gmx.de",
            "gmx.net",
            "web.de",
            "t-online.de",
            "proton.me",
            "protonmail.com",
            "yandex.ru",
            "mail.ru",
            "comcast.net",
            "orange.fr",
            "free.fr",
            "qq.com",
        ],
    )
    if domain.strip()
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["pufferpost.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["pufferpost.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["pufferpost.throttling.WriteRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["pufferpost.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["pufferpost.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "pufferpost.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "pufferpost.openapi.PufferPostAutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PAGINATION_CLASS": None,
    "DEFAULT_FILTER_BACKENDS": [],
}

# The schema is served at /v1/openapi.json and browsed at /docs/ (Swagger UI from local static
# files: the docs page contacts no CDN). Both are public: the schema holds no secrets.
SPECTACULAR_SETTINGS = {
    "TITLE": "PufferPost API",
    "DESCRIPTION": (
        "Transactional email: domains, senders, templates, messages, suppressions, unsubscribe groups "
        "and webhooks. Request bodies of the send endpoints are camelCase; every response is snake_case. "
        "Every non-2xx answer is the `Error` envelope; an undocumented method on a documented path is 405 "
        "`method_not_allowed`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": "/v1",
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pufferpost.openapi.add_request_id_header",
        "pufferpost.openapi.add_examples",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": False},
    # Shared choice sets get one name each (domains: DKIM and return-path statuses, DNS record
    # types, DMARC alignment tags and modes).
    "ENUM_NAME_OVERRIDES": {
        "VerificationStatusEnum": "domains.models.DkimStatus",
        "DnsRecordTypeEnum": ["TXT", "MX"],
        "AlignmentTagEnum": ["r", "s"],
        "AlignmentModeEnum": ["relaxed", "strict"],
    },
}

# --- Redis and Celery -------------------------------------------------------------------------
REDIS_URL = _read("str", "REDIS_URL", default="redis://127.0.0.1:6379/0")
# Every Redis key the platform writes (broker queues included) starts with this prefix, so one
# Redis can serve several installations (and parallel test runs) without crosstalk.
REDIS_KEY_PREFIX = _read("str", "PUFFERPOST_REDIS_KEY_PREFIX", default="pp:")

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Above the longest task (SMTP timeouts included) so a running task is never redelivered.
    "visibility_timeout": _read("int", "PUFFERPOST_BROKER_VISIBILITY_TIMEOUT", default=3600),
    "global_keyprefix": REDIS_KEY_PREFIX,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery keeps Django's LOGGING (same format as every other process); see pufferpost.celery.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = _read("bool", "CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# One queue per kind of work; a worker started without -Q consumes all of them. Retries (a
# deferral's, a paced destination's booked slot, the sweeper's) have a queue of their own, so a
# deployment can give fresh mail processes that a throttled destination's backlog never occupies
# (compose.yaml does: worker-delivery and worker-retry).
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name)
    for name in ("default", "domains", "delivery", "delivery_retry", "webhooks")
]
CELERY_TASK_ROUTES = {
    "domains.tasks.*": {"queue": "domains"},
    "messaging.delivery.tasks.deliver_due_messages": {"queue": "delivery_retry"},
    "messaging.delivery.*": {"queue": "delivery"},
    "messaging.webhooks.*": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "domains-recheck-due": {"task": "domains.tasks.recheck_due_domains", "schedule": 60.0},
}

# --- PufferPost ---------------------------------------------------------------------------------
PUFFERPOST_DNS_NAMESERVERS = _host_ports(
    "PUFFERPOST_DNS_NAMESERVERS", _read("str", "PUFFERPOST_DNS_NAMESERVERS", default=""), 53
)
PUFFERPOST_DNS_TIMEOUT = _read("float", "PUFFERPOST_DNS_TIMEOUT", default=5.0)
# Longest a delivery lookup (MX, addresses, MTA-STS TXT) is kept in each process, capping the
# record's TTL; absent records at most 60 s; 0 turns the cache off. Verification always asks.
PUFFERPOST_DNS_CACHE_SECONDS = _read("float", "PUFFERPOST_DNS_CACHE_SECONDS", default=300.0, minimum=0)
PUFFERPOST_SMTP_RELAY = _read("str", "PUFFERPOST_SMTP_RELAY", default="")
if PUFFERPOST_SMTP_RELAY and urlsplit(PUFFERPOST_SMTP_RELAY).scheme not in ("smtp", "smtp+starttls", "smtps"):
    raise ImproperlyConfigured("PUFFERPOST_SMTP_RELAY must be smtp://, smtp+starttls:// or smtps://")
PUFFERPOST_SMTP_PORT = _read("int", "PUFFERPOST_SMTP_PORT", default=25)
# Direct-to-MX delivery never connects to private or loopback addresses, except in a test world
# (the suite, `make up`, bench and drills point every MX at loopback).
PUFFERPOST_SMTP_ALLOW_PRIVATE = _read("bool", "PUFFERPOST_SMTP_ALLOW_PRIVATE", default=False)
PUFFERPOST_PUBLIC_URL = _read("str", "PUFFERPOST_PUBLIC_URL", default="http://localhost:8000").rstrip("/")
PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE = _read("bool", "PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE", default=False)
PUFFERPOST_DKIM_SELECTOR = _read("str", "PUFFERPOST_DKIM_SELECTOR", default="mlr1")
PUFFERPOST_DOMAIN_RECHECK_VERIFIED = _read("int", "PUFFERPOST_DOMAIN_RECHECK_VERIFIED", default=3600, positive=True)
PUFFERPOST_DOMAIN_RECHECK_PENDING = _read("int", "PUFFERPOST_DOMAIN_RECHECK_PENDING", default=300, positive=True)

# --- sending ---
# Seconds a message may stay `accepted` before the outbox sweeper enqueues it again.
PUFFERPOST_OUTBOX_SWEEP_AFTER = _read("int", "PUFFERPOST_OUTBOX_SWEEP_AFTER", default=120)
# Seconds an Idempotency-Key is remembered; the contract promises at least 24 hours.
PUFFERPOST_IDEMPOTENCY_TTL = _read("int", "PUFFERPOST_IDEMPOTENCY_TTL", default=86400, minimum=86400)
# Largest request body of POST /v1/messages (3 attachments of 1 MiB are ~4.2 MB of base64).
PUFFERPOST_WRITE_RATE_LIMIT_PER_MINUTE = _read(
    "int", "PUFFERPOST_WRITE_RATE_LIMIT_PER_MINUTE", default=600, positive=True
)
PUFFERPOST_DOMAIN_REFRESH_DEADLINE = _read(
    "float", "PUFFERPOST_DOMAIN_REFRESH_DEADLINE", default=4.0, positive=True, maximum=30
)
PUFFERPOST_SEND_MAX_BODY_BYTES = _read("int", "PUFFERPOST_SEND_MAX_BODY_BYTES", default=5 * 1024 * 1024)
# Largest request body of POST /v1/messages/batch.
PUFFERPOST_BATCH_MAX_BODY_BYTES = _read("int", "PUFFERPOST_BATCH_MAX_BODY_BYTES", default=20 * 1024 * 1024)
# Test keys' reserved recipient domain: delivered@, bounced@, blocked@, deferred@, complained@ and
# unsubscribed@ at it produce those outcomes (white-label: pick a domain under your own name).
PUFFERPOST_SIMULATOR_DOMAIN = _read("str", "PUFFERPOST_SIMULATOR_DOMAIN", default="simulator.invalid").strip().lower()
if not PUFFERPOST_SIMULATOR_DOMAIN or "@" in PUFFERPOST_SIMULATOR_DOMAIN or "." not in PUFFERPOST_SIMULATOR_DOMAIN:
    raise ImproperlyConfigured("PUFFERPOST_SIMULATOR_DOMAIN must be a domain name such as simulator.invalid.")
# SMTP submission (manage.py run_submission_smtp): the operator's certificate chain and key (PEM
# files) for STARTTLS and the implicit-TLS port. Without them the server starts only when AUTH over
# plain text is allowed, which is for development and tests on loopback only.
PUFFERPOST_SUBMISSION_TLS_CERT = _read("str", "PUFFERPOST_SUBMISSION_TLS_CERT", default="")
PUFFERPOST_SUBMISSION_TLS_KEY = _read("str", "PUFFERPOST_SUBMISSION_TLS_KEY", default="")
PUFFERPOST_SUBMISSION_ALLOW_INSECURE_AUTH = _read("bool", "PUFFERPOST_SUBMISSION_ALLOW_INSECURE_AUTH", default=False)
# Django refuses bodies above this before any view runs; the send views enforce their own limits
# above (413 payload_too_large), so it is raised to the larger of the two.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(PUFFERPOST_SEND_MAX_BODY_BYTES, PUFFERPOST_BATCH_MAX_BODY_BYTES)
CELERY_TASK_ROUTES["messaging.tasks.*"] = {"queue": "default"}
CELERY_BEAT_SCHEDULE["messaging-outbox-sweep"] = {"task": "messaging.tasks.sweep_outbox", "schedule": 30.0}
# Retention (messaging.partitions): months created ahead, and how long a purge waits for a table lock
# before it gives up until the next run (it never queues behind live traffic).
PUFFERPOST_PARTITIONS_AHEAD = _read("int", "PUFFERPOST_PARTITIONS_AHEAD", default=3, positive=True, maximum=24)
PUFFERPOST_PURGE_LOCK_TIMEOUT = _read("float", "PUFFERPOST_PURGE_LOCK_TIMEOUT", default=5.0, positive=True, maximum=600)
# A `sent` message whose final answer never came counts as finished for retention once it was
# accepted more than the delivery retry window plus this many seconds ago: receiving servers keep a
# deferred message about five days before they return a bounce (Postfix's maximal_queue_lifetime,
# sendmail's Timeout.queuereturn), so after that no DSN is coming.
PUFFERPOST_RETENTION_SENT_GRACE = _read(
    "float", "PUFFERPOST_RETENTION_SENT_GRACE", default=5 * 86400.0, minimum=0, maximum=365 * 86400.0
)
# Per-workspace retention inside the months that are kept (messaging.retention): messages per
# batch (one short transaction each) and batches per run; what is left goes on the next run.
PUFFERPOST_RETENTION_BATCH = _read("int", "PUFFERPOST_RETENTION_BATCH", default=1000, positive=True, maximum=10_000)
PUFFERPOST_RETENTION_MAX_BATCHES = _read(
    "int", "PUFFERPOST_RETENTION_MAX_BATCHES", default=200, positive=True, maximum=100_000
)
CELERY_BEAT_SCHEDULE["messaging-retention"] = {"task": "messaging.tasks.retention", "schedule": 6 * 3600.0}
CELERY_BEAT_SCHEDULE["messaging-idempotency-purge"] = {
    "task": "messaging.tasks.purge_idempotency_records",
    "schedule": 3600.0,
}

# --- webhooks ---
# PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE is read above with the other PufferPost variables.
PUFFERPOST_WEBHOOKS_TIMEOUT = _read("float", "PUFFERPOST_WEBHOOKS_TIMEOUT", default=10.0, positive=True, maximum=60)
PUFFERPOST_WEBHOOKS_SWEEP_INTERVAL = _read("float", "PUFFERPOST_WEBHOOKS_SWEEP_INTERVAL", default=15.0, positive=True)
PUFFERPOST_WEBHOOKS_RETENTION_DAYS = _read("int", "PUFFERPOST_WEBHOOKS_RETENTION_DAYS", default=30, minimum=2)
CELERY_BEAT_SCHEDULE["webhooks-deliver-due"] = {
    "task": "messaging.webhooks.tasks.deliver_due_webhooks",
    "schedule": PUFFERPOST_WEBHOOKS_SWEEP_INTERVAL,
}
CELERY_BEAT_SCHEDULE["webhooks-prune"] = {
    "task": "messaging.webhooks.tasks.prune_webhook_deliveries",
    "schedule": 24 * 3600.0,
}

# --- domains ---
PUFFERPOST_DOMAIN_RECHECK_TICK = _read("float", "PUFFERPOST_DOMAIN_RECHECK_TICK", default=60.0, positive=True)
PUFFERPOST_DOMAIN_RECHECK_BATCH = _read("int", "PUFFERPOST_DOMAIN_RECHECK_BATCH", default=500, positive=True)
PUFFERPOST_DOMAIN_RECHECK_CONCURRENCY = _read("int", "PUFFERPOST_DOMAIN_RECHECK_CONCURRENCY", default=32, positive=True)
CELERY_BEAT_SCHEDULE["domains-recheck-due"]["schedule"] = PUFFERPOST_DOMAIN_RECHECK_TICK
# The return-path (custom MAIL FROM) host of each domain, `bounces.<domain>`, gets an MX record
# pointing here: the operator's own host whose port 25 reaches run_inbound_smtp (white-label:
# customers publish this name, so it must never name the platform). Empty: no return path offered.
PUFFERPOST_INBOUND_MX_HOST = _read("str", "PUFFERPOST_INBOUND_MX_HOST", default="").strip().lower().rstrip(".")
# What the return-path host's SPF record authorises: the addresses mail leaves from (ip4:/ip6:
# terms; an address or a network) and/or one operator include domain (`include:` term).
PUFFERPOST_SPF_ADDRESSES = _read("list", "PUFFERPOST_SPF_ADDRESSES", default=[])
# Seconds the old DKIM record stays listed ("keep until") after a rotation moved signing to the new key:
# mail signed with the old key may still be verified (queued, forwarded, re-checked) meanwhile.
PUFFERPOST_DKIM_ROTATION_GRACE = _read("int", "PUFFERPOST_DKIM_ROTATION_GRACE", default=7 * 86400, minimum=0)
PUFFERPOST_SPF_INCLUDE = _read("str", "PUFFERPOST_SPF_INCLUDE", default="").strip().lower().rstrip(".")


def _networks(name, values):
    import ipaddress

    try:
        return [str(ipaddress.ip_network(v.strip(), strict=False)) for v in values if v.strip()]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from exc


PUFFERPOST_SPF_ADDRESSES = _networks("PUFFERPOST_SPF_ADDRESSES", PUFFERPOST_SPF_ADDRESSES)

# --- feedback ---------------------------------------------------------------------------------
# Bounces and complaints after delivery (messaging.feedback) and the sender auto-pause.
PUFFERPOST_INBOUND_SMTP_MAX_BYTES = _read(
    "int", "PUFFERPOST_INBOUND_SMTP_MAX_BYTES", default=10 * 1024 * 1024, minimum=1024
)
# Besides every VERP return path (bounces+msg_…@…), the inbound server accepts these: a full
# address, or a bare local part (`fbl`) meaning that local part at any domain.
PUFFERPOST_INBOUND_FEEDBACK_ADDRESSES = [
    address.lower() for address in _read("list", "PUFFERPOST_INBOUND_FEEDBACK_ADDRESSES", default=[])
]
PUFFERPOST_REPUTATION_WINDOW_DAYS = _read("int", "PUFFERPOST_REPUTATION_WINDOW_DAYS", default=7, minimum=1)
# Extra bounce-class rules (messaging/feedback/bounce_rules.toml's format), tried before the built-in ones.
PUFFERPOST_BOUNCE_RULES_FILE = _read("str", "PUFFERPOST_BOUNCE_RULES_FILE", default="")
if PUFFERPOST_BOUNCE_RULES_FILE and not Path(PUFFERPOST_BOUNCE_RULES_FILE).is_file():
    raise ImproperlyConfigured(f"PUFFERPOST_BOUNCE_RULES_FILE {PUFFERPOST_BOUNCE_RULES_FILE!r} is not a file.")

# --- delivery ---
# Seconds for each SMTP connect and each command reply; a server slower than this defers the message.
PUFFERPOST_SMTP_TIMEOUT = _read("float", "PUFFERPOST_SMTP_TIMEOUT", default=30.0, positive=True)
# The name this host gives in EHLO/HELO; receivers check it resolves. Empty: the machine's FQDN.
PUFFERPOST_SMTP_HELO_NAME = _read("str", "PUFFERPOST_SMTP_HELO_NAME", default="")
# Shaping per destination (pufferpost.shaping): the operator's file (YAML or JSON) over the presets.
PUFFERPOST_SHAPING_FILE = _read("str", "PUFFERPOST_SHAPING_FILE", default="")
# Seconds a connection slot is held without a message before another worker may take it (a dead
# worker's slot frees after this). Renewed with every message; idle connections close far sooner.
PUFFERPOST_SHAPING_LEASE = _read("float", "PUFFERPOST_SHAPING_LEASE", default=300.0, positive=True)
# Seconds an open connection may sit idle in a batch before it is closed (its slot released).
PUFFERPOST_SHAPING_IDLE_CLOSE = _read("float", "PUFFERPOST_SHAPING_IDLE_CLOSE", default=10.0, minimum=0)
# Seconds of conservative limits (1 connection, a quarter of the rate) after Redis lost the state.
PUFFERPOST_SHAPING_RECOVERY = _read("float", "PUFFERPOST_SHAPING_RECOVERY", default=30.0, minimum=0)
# Seconds mail waits when Redis cannot be reached (shaping fails closed).
PUFFERPOST_SHAPING_UNAVAILABLE_WAIT = _read("float", "PUFFERPOST_SHAPING_UNAVAILABLE_WAIT", default=30.0, positive=True)
# Seconds after its booked slot a paced message is still admitted on that slot (later: it asks again).
# The sliding-minute cap holds however late it comes; this only bounds how long a slot is kept.
PUFFERPOST_SHAPING_BOOKING_LATE = _read(
    "float", "PUFFERPOST_SHAPING_BOOKING_LATE", default=300.0, minimum=0, maximum=3600
)
# Seconds an MX host that refused a connection or timed out is skipped.
PUFFERPOST_SHAPING_HOST_SKIP = _read("float", "PUFFERPOST_SHAPING_HOST_SKIP", default=60.0, minimum=0)
# Seconds before retrying a greylisted message when the reply does not say.
PUFFERPOST_GREYLIST_RETRY = _read("float", "PUFFERPOST_GREYLIST_RETRY", default=300.0, positive=True)
# Extra CA certificates (PEM) trusted when verifying MX and MTA-STS certificates: a test or dev CA.
PUFFERPOST_TLS_CA_FILE = _read("str", "PUFFERPOST_TLS_CA_FILE", default="")
# MTA-STS (RFC 8461) for direct-to-MX delivery: on unless turned off; the policy host's HTTPS port
# (443; tests and `make up` serve policies on loopback at another) and the fetch's overall timeout.
PUFFERPOST_MTA_STS = _read("bool", "PUFFERPOST_MTA_STS", default=True)
PUFFERPOST_MTA_STS_PORT = _read("int", "PUFFERPOST_MTA_STS_PORT", default=443, positive=True, maximum=65535)
PUFFERPOST_MTA_STS_TIMEOUT = _read("float", "PUFFERPOST_MTA_STS_TIMEOUT", default=10.0, positive=True, maximum=60)
# Domain of the VERP return path (bounces+msg_…@DOMAIN); its MX must reach run_inbound_smtp.
# Empty: the from-domain of each message.
PUFFERPOST_RETURN_PATH_DOMAIN = _read("str", "PUFFERPOST_RETURN_PATH_DOMAIN", default="").strip().lower()

# --- pipeline ---
# Delivery (messaging.delivery: claim, batch, commit_point, outcomes, sweeper): leases, retries, the sweeper, batching of writes.
# Seconds a worker's claim on a message lasts before the sweeper may give the message to another
# worker; renewed at the commit point. Far above the SMTP timeout: a whole transaction fits.
PUFFERPOST_DELIVERY_LEASE = _read("float", "PUFFERPOST_DELIVERY_LEASE", default=600.0, positive=True)
# First retry delay in seconds after a temporary failure; doubles per attempt (with jitter).
PUFFERPOST_DELIVERY_RETRY_BASE = _read("float", "PUFFERPOST_DELIVERY_RETRY_BASE", default=60.0, positive=True)
# Longest delay between two attempts, in seconds.
PUFFERPOST_DELIVERY_RETRY_MAX_DELAY = _read(
    "float", "PUFFERPOST_DELIVERY_RETRY_MAX_DELAY", default=2 * 3600.0, positive=True
)
# Seconds after acceptance during which temporary failures are retried; then the message is `errored`.
PUFFERPOST_DELIVERY_RETRY_WINDOW = _read(
    "float", "PUFFERPOST_DELIVERY_RETRY_WINDOW", default=72 * 3600.0, positive=True
)
# Retries due within this many seconds get a Celery countdown; later ones are left to the sweeper
# (a countdown longer than the broker's visibility timeout would be redelivered early).
PUFFERPOST_DELIVERY_COUNTDOWN_MAX = _read("float", "PUFFERPOST_DELIVERY_COUNTDOWN_MAX", default=3000.0)
# Seconds between sweeps (due retries whose countdown was lost, claims of dead workers).
PUFFERPOST_DELIVERY_SWEEP_INTERVAL = _read("float", "PUFFERPOST_DELIVERY_SWEEP_INTERVAL", default=30.0, positive=True)
# A due message is swept only this many seconds after it fell due (its countdown goes first).
PUFFERPOST_DELIVERY_SWEEP_GRACE = _read("float", "PUFFERPOST_DELIVERY_SWEEP_GRACE", default=60.0, minimum=0)
# Outcomes are written in bulk every this many messages or seconds, whichever comes first.
PUFFERPOST_DELIVERY_FLUSH_EVERY = _read("int", "PUFFERPOST_DELIVERY_FLUSH_EVERY", default=50, positive=True)
PUFFERPOST_DELIVERY_FLUSH_SECONDS = _read("float", "PUFFERPOST_DELIVERY_FLUSH_SECONDS", default=2.0, minimum=0)
_visibility = CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
if _visibility <= PUFFERPOST_DELIVERY_COUNTDOWN_MAX:
    raise ImproperlyConfigured("PUFFERPOST_DELIVERY_COUNTDOWN_MAX must be below PUFFERPOST_BROKER_VISIBILITY_TIMEOUT.")
CELERY_BEAT_SCHEDULE["delivery-sweep"] = {
    "task": "messaging.delivery.tasks.sweep_deliveries",
    "schedule": PUFFERPOST_DELIVERY_SWEEP_INTERVAL,
}
