"""The error envelope: every non-2xx answer is `{"error": {"code", "message", "request_id"}}`.

The same request id travels in the `X-Request-Id` header of every response, success or not.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback
from ulid import ULID

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A refusal in the domain's words, raised by services and selectors (`Conflict("sender_exists", …)`).

    They know nothing of HTTP: `exception_handler` maps every one to the envelope, with the
    status its kind hints (`status_code`) and a `Retry-After` when it says when to retry. `extra`
    goes into the envelope beside code and message (e.g. `violations`).
    """

    status_code = 422

    def __init__(self, code: str, message: str, *, retry_after: int | None = None, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.extra = extra


class Invalid(ApplicationError):
    """The input breaks a rule only the domain can check (a slug no name yields, a template that does not compile)."""


class SendRefused(ApplicationError):
    """A valid send the workspace's state refuses (an unknown template, a suppressed recipient)."""


class Forbidden(ApplicationError):
    status_code = 403


class NotFound(ApplicationError):
    status_code = 404


class Conflict(ApplicationError):
    status_code = 409


class LimitExceeded(ApplicationError):
    status_code = 429


class ApiError(exceptions.APIException):
    """An HTTP-level refusal raised by a view (its own status and public code); services raise ApplicationError."""

    def __init__(self, *, status_code: int, code: str, message: str, headers: dict | None = None, **extra):
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail=message, code=code)


def envelope(request, code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra, "request_id": request_id_of(request)}}


def request_id_of(request) -> str:
    request = getattr(request, "_request", request)
    rid = getattr(request, "request_id", None)
    if rid is None:
        rid = request.request_id = f"req_{ULID()}"
    return rid


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id_of(request)
        response = self.get_response(request)
        response["X-Request-Id"] = request.request_id
        return response


def violations_from(detail, prefix: str = "") -> list[dict]:
    """Flatten DRF's nested error detail into `[{"field": "cc[3]", "code", "message"}]`."""
    found = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                name = prefix or None
            elif isinstance(key, int):
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            found.extend(violations_from(value, name or ""))
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                if item:
                    found.extend(violations_from(item, f"{prefix}[{index}]"))
            else:
                found.append(_violation(prefix, item))
    else:
        found.append(_violation(prefix, detail))
    return found


def _violation(field, detail) -> dict:
    code = getattr(detail, "code", None) or "invalid"
    return {"field": field or None, "code": _CODE_ALIASES.get(code, code), "message": str(detail)}


_CODE_ALIASES = {"invalid": "invalid_value", "null": "required", "blank": "required"}

_STANDARD = {
    exceptions.ParseError: (400, "invalid_json", "The request body is not valid JSON."),
    exceptions.NotAuthenticated: (401, "unauthorized", "A valid API key is required."),
    exceptions.AuthenticationFailed: (401, "unauthorized", "A valid API key is required."),
    exceptions.MethodNotAllowed: (405, "method_not_allowed", None),
    exceptions.NotAcceptable: (406, "not_acceptable", "This endpoint only answers with JSON."),
    exceptions.UnsupportedMediaType: (415, "unsupported_media_type", "Send the request body as application/json."),
    exceptions.Throttled: (429, "rate_limited", "Too many requests."),
}


def exception_handler(exc, context):
    """DRF exception handler producing the envelope for every failure, 500s included."""
    request = context.get("request")
    view = context.get("view")
    headers = {}
    extra = {}
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, RequestDataTooBig):
        exc = ApiError(status_code=413, code="payload_too_large", message="The request body is too large.")
    if isinstance(exc, ApplicationError):
        status_code, code, message, extra = exc.status_code, exc.code, exc.message, exc.extra
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, ApiError):
        status_code, code, message = exc.status_code, exc.code, exc.message
        headers, extra = exc.headers, exc.extra
    elif isinstance(exc, exceptions.ValidationError):
        status_code, code, message = 422, "validation_failed", "The request is invalid."
        extra = {"violations": violations_from(exc.detail)}
    elif isinstance(exc, exceptions.NotFound):
        status_code = 404
        code = getattr(view, "not_found_code", "not_found")
        message = getattr(view, "not_found_message", "No such resource.")
    elif isinstance(exc, exceptions.PermissionDenied):
        status_code, code, message = 403, getattr(exc, "public_code", "forbidden"), str(exc.detail)
    elif type(exc) in _STANDARD or isinstance(exc, tuple(_STANDARD)):
        status_code, code, message = next(v for k, v in _STANDARD.items() if isinstance(exc, k))
        message = message or str(exc.detail)
        if isinstance(exc, exceptions.Throttled) and exc.wait:
            headers["Retry-After"] = str(int(exc.wait))
    elif isinstance(exc, exceptions.APIException):
        status_code, code, message = exc.status_code, exc.default_code, str(exc.detail)
    else:
        logger.exception("Unhandled error in %s", getattr(view, "__class__", view), exc_info=exc)
        status_code, code, message = 500, "internal_error", "Something went wrong on our side."
    if isinstance(exc, exceptions.APIException):
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait and "Retry-After" not in headers:
            headers["Retry-After"] = str(int(wait))
    if status_code == 401 and "WWW-Authenticate" not in headers:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    set_rollback()
    return Response(envelope(request, code, message, **extra), status=status_code, headers=headers)


def not_found_view(request, exception=None):
    return JsonResponse(envelope(request, "not_found", "No such resource."), status=status.HTTP_404_NOT_FOUND)


def server_error_view(request):
    return JsonResponse(
        envelope(request, "internal_error", "Something went wrong on our side."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def bad_request_view(request, exception=None):
    return JsonResponse(envelope(request, "bad_request", "The request is malformed."), status=400)
