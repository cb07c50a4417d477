"""Exceptions: every non-2xx answer becomes an `APIError` subclass carrying the envelope.

The server answers every failure with `{"error": {"code", "message", "request_id", ...}}`; the
exception keeps each part (`code`, `message`, `request_id`, `violations` on a 422, `reason` and
`detail` when the server says why) so callers branch on `code`, never on the message text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from requests.structures import CaseInsensitiveDict


@dataclass(frozen=True)
class Violation:
    """One offending field of a 422: `field` is e.g. `cc[3]` (None for the whole body)."""

    field: str | None
    code: str
    message: str


@dataclass(frozen=True)
class RateLimit:
    """The `RateLimit-*` headers of a send: requests allowed in the window, left, and the window's
    end in Unix epoch seconds (`reset`)."""

    limit: int
    remaining: int
    reset: int

    @classmethod
    def from_headers(cls, headers: Any) -> RateLimit | None:
        try:
            return cls(
                limit=int(headers["RateLimit-Limit"]),
                remaining=int(headers["RateLimit-Remaining"]),
                reset=int(headers["RateLimit-Reset"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


class PufferPostError(Exception):
    """The base of everything this package raises."""


class APIConnectionError(PufferPostError):
    """The server could not be reached, or the connection broke before an answer arrived."""


class WebhookVerificationError(PufferPostError):
    """A webhook's `PufferPost-Signature` does not match its body, or is too old."""


class APIError(PufferPostError):
    """A non-2xx answer. `code`, `message` and `request_id` come from the error envelope."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        request_id: str | None,
        body: Any = None,
        headers: Any = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.body = body
        self.headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(headers or {})
        error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
        self.violations: list[Violation] = [
            Violation(field=v.get("field"), code=v.get("code", ""), message=v.get("message", ""))
            for v in error.get("violations") or []
            if isinstance(v, dict)
        ]
        self.reason: str | None = error.get("reason")
        self.detail: str | None = error.get("detail")
        self.missing_variables: list[str] = list(error.get("missing_variables") or [])
        self.rate_limit = RateLimit.from_headers(self.headers)


class BadRequestError(APIError):
    """400 (`invalid_json`) and any other 4xx without a class of its own (405, 406, 415)."""


class AuthenticationError(APIError):
    """401 `unauthorized`: the key is missing, malformed, unknown or revoked."""


class PermissionDeniedError(APIError):
    """403: `missing_scope` (the message names the scope) or `sending_paused`."""


class NotFoundError(APIError):
    """404 with the resource's code (`message_not_found`, `domain_not_found`, ...)."""


class ConflictError(APIError):
    """409: `idempotency_key_reused`, `idempotency_key_in_use`, `sender_exists`, `template_exists`, ..."""


class PayloadTooLargeError(APIError):
    """413 `payload_too_large`."""


class ValidationError(APIError):
    """422: `validation_failed` with `violations`, or a specific refusal such as `sender_not_available`
    (see `reason` and `detail`) or `recipient_suppressed`."""


class RateLimitError(APIError):
    """429 `rate_limited` (or `quota_exceeded`), raised once the retries allowed are used up.
    `retry_after` is the server's `Retry-After` in seconds (None when absent)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            self.retry_after: int | None = int(self.headers.get("Retry-After", ""))
        except ValueError:
            self.retry_after = None


class ServerError(APIError):
    """5xx: `internal_error` (a bug on the server's side) or a service that is not ready (503)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
}


def error_from_response(status: int, body: Any, headers: Any) -> APIError:
    """The exception for one non-2xx answer; bodies that are not the envelope still raise (code `http_<status>`)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or f"http_{status}")
        message = str(error.get("message") or "")
        request_id = error.get("request_id")
    else:
        code, message, request_id = f"http_{status}", (body if isinstance(body, str) else str(body or ""))[:500], None
    request_id = request_id or CaseInsensitiveDict(headers or {}).get("X-Request-Id")
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequestError)
    return cls(status=status, code=code, message=message, request_id=request_id, body=body, headers=headers)
