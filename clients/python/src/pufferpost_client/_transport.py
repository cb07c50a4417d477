"""One HTTP round trip, with the retry rule.

A request is retried only when repeating it cannot do anything twice: a read or a delete
(GET, HEAD, OPTIONS, DELETE), or a POST/PATCH that carries an `Idempotency-Key`. Only two answers
are retried: 429 (rate limited; the server stored nothing) and 503 (not ready). The wait is the
answer's `Retry-After`, else the time left until `RateLimit-Reset`, else an exponential backoff;
at most `max_retries` more attempts, and never a wait longer than `max_retry_wait` seconds (then
the error is raised at once). `quota_exceeded` is never retried: it lasts until the month ends.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

from pufferpost_client.errors import APIConnectionError, RateLimit, error_from_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
RETRY_STATUSES = frozenset({429, 503})
USER_AGENT = "pufferpost-client-python/0.1.0"


@dataclass
class Response:
    """A 2xx answer: the status, the headers, the decoded JSON body (None when empty)."""

    status: int
    headers: CaseInsensitiveDict[str]
    body: Any

    @property
    def request_id(self) -> str | None:
        return self.headers.get("X-Request-Id")

    @property
    def rate_limit(self) -> RateLimit | None:
        return RateLimit.from_headers(self.headers)


@dataclass(frozen=True)
class RetryNote:
    """What `on_retry` is told before each wait: the attempt that failed, its status and the wait."""

    attempt: int
    status: int
    wait: float
    method: str
    path: str


class Transport:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: float,
        max_retries: int,
        max_retry_wait: float,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[RetryNote], None] | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.session = session or requests.Session()
        self.sleep = sleep
        self.on_retry = on_retry

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        method = method.upper()
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        sent_headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        data = content
        if json_body is not None:
            data = json.dumps(json_body, ensure_ascii=False).encode()
            sent_headers["Content-Type"] = "application/json"
        sent_headers.update(headers or {})
        query = {k: v for k, v in (params or {}).items() if v is not None}
        retryable = method in SAFE_METHODS or any(k.lower() == "idempotency-key" for k in sent_headers)
        attempt = 0
        while True:
            try:
                answer = self.session.request(
                    method, url, params=query, data=data, headers=sent_headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                raise APIConnectionError(f"{method} {url}: {exc}") from exc
            body = _decode(answer)
            if 200 <= answer.status_code < 300:
                return Response(status=answer.status_code, headers=answer.headers, body=body)
            wait = None
            if retryable and attempt < self.max_retries and answer.status_code in RETRY_STATUSES:
                wait = retry_wait(answer.status_code, body, answer.headers, attempt)
            if wait is None or wait > self.max_retry_wait:
                raise error_from_response(answer.status_code, body, answer.headers)
            attempt += 1
            if self.on_retry:
                self.on_retry(
                    RetryNote(attempt=attempt, status=answer.status_code, wait=wait, method=method, path=path)
                )
            self.sleep(wait)


def retry_wait(status: int, body: Any, headers: Mapping[str, str], attempt: int) -> float | None:
    """Seconds to wait before the next attempt, or None when this answer must not be retried."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code") == "quota_exceeded":
        return None
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    reset = headers.get("RateLimit-Reset")
    if reset:
        try:
            value = float(reset)
        except ValueError:
            value = None
        if value is not None:
            # PufferPost sends epoch seconds; the IETF draft's delta-seconds form is small.
            return max(0.0, value - time.time()) if value > 1_000_000_000 else value
    return min(0.5 * 2**attempt, 8.0)


def _decode(answer: requests.Response) -> Any:
    if not answer.content:
        return None
    try:
        return answer.json()
    except ValueError:
        return answer.text
