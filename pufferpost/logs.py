"""Log formatting shared by every process (web, gunicorn, Celery workers and beat, commands).

One timestamp format everywhere (ISO 8601 UTC with milliseconds, `2026-12-01T13:05:01.123Z`), and
two renderings chosen by PUFFERPOST_LOG_FORMAT: `text` (default, for people) and `json` (one
object a line, for machines). Structured fields travel as `extra={"fields": {...}}` (see `fields`):
text shows them as `key=value` after the message, JSON as top-level keys; None values are left out.
"""

import json
import logging
from datetime import UTC, datetime


def fields(**values) -> dict:
    """`log.info("delivered", extra=fields(message="msg_…", code=250))`."""
    return {"fields": values}


def timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _text_value(value) -> str:
    text = "" if value is None else str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    def format(self, record):
        line = f"{timestamp(record)} {record.levelname} {record.name} [{record.process}] {record.getMessage()}"
        extra = {k: v for k, v in (getattr(record, "fields", None) or {}).items() if v is not None}
        if extra:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record):
        body = {
            "ts": timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in (getattr(record, "fields", None) or {}).items():
            if value is not None:
                body.setdefault(key, value)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


HEALTH_PATHS = ("/healthz", "/readyz", "/metrics")


class QuietHealthFilter(logging.Filter):
    """Drops request-log records of the health and metrics endpoints (probes hit them every few seconds)."""

    def filter(self, record):
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        if path is None and isinstance(record.args, dict):
            path = str(record.args.get("U", ""))  # gunicorn.access: its atoms, U = the URL path
        if path is None:
            # django.server records carry the request line as their first argument.
            args = record.args if isinstance(record.args, tuple) else ()
            parts = (str(args[0]) if args else "").split(" ")
            path = parts[1] if len(parts) > 1 else ""
        return path.split("?", 1)[0] not in HEALTH_PATHS


class DropDjango4xx(logging.Filter):
    """django.request logs every 4xx as "Not Found: /path"; pufferpost.requests logs it with its
    envelope code and request id instead. 5xx lines (with their traceback) stay."""

    def filter(self, record):
        return getattr(record, "status_code", 500) >= 500


class DropBeatTicks(logging.Filter):
    """Beat announces every periodic task it sends (several a minute, all day); keep its other lines."""

    def filter(self, record):
        return not str(record.msg).startswith("Scheduler: Sending due task")


def logging_config(*, level: str, fmt: str) -> dict:
    """The dictConfig for Django's LOGGING, gunicorn's logconfig_dict and Celery (which is told to
    leave logging alone, see pufferpost.celery)."""
    handler = {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["quiet_health"]}
    quiet = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"text": {"()": TextFormatter}, "json": {"()": JsonFormatter}},
        "filters": {
            "quiet_health": {"()": QuietHealthFilter},
            "beat_ticks": {"()": DropBeatTicks},
            "django_4xx": {"()": DropDjango4xx},
        },
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Request lines of runserver / gunicorn go through the same handler and format.
            "django.request": {"level": "INFO", "filters": ["django_4xx"]},
            "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
            # Idle chatter: a line per task received / succeeded / sent by beat says nothing new;
            # failures still log at ERROR, and our own services log what each task did.
            "celery.beat": {"level": "INFO", "filters": ["beat_ticks"]},
            "celery.worker.strategy": quiet,
            "celery.app.trace": quiet,
            # aiosmtpd logs every SMTP command at INFO; the feedback services log what matters.
            "mail.log": quiet,
        },
    }
