"""Checking a webhook delivery's `PufferPost-Signature` header.

The server signs each delivery as `t=<unix seconds>,v1=<hex HMAC-SHA256>` where the HMAC key is
the endpoint's secret (`whsec_…`, shown once by `webhooks.create`) and the signed bytes are the
timestamp, a dot and the raw request body: `f"{t}.".encode() + body`. Verify against the body
exactly as received (before any JSON parsing), and refuse old timestamps so a captured delivery
cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from pufferpost_client.errors import WebhookVerificationError

SIGNATURE_HEADER = "PufferPost-Signature"
DEFAULT_TOLERANCE = 300


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value the server sends for `body` at `timestamp` (handy for your own tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_webhook(
    secret: str,
    header: str | None,
    body: bytes | str,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """Check `header` (the `PufferPost-Signature` value) against `body` and return the decoded event.

    Raises `WebhookVerificationError` when the header is missing or malformed, no `v1` signature
    matches, or the timestamp is more than `tolerance` seconds from `now` (None: no age check).
    Several `v1=` entries are accepted (any one matching is enough), so a secret rotation that
    signs with two secrets verifies with either.
    """
    if isinstance(body, str):
        body = body.encode()
    if not header:
        raise WebhookVerificationError(f"No {SIGNATURE_HEADER} header.")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookVerificationError(f"Malformed timestamp in {SIGNATURE_HEADER}: {value!r}.") from None
        elif name == "v1":
            signatures.append(value.strip())
    if timestamp is None or not signatures:
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} must look like t=<unix>,v1=<hex>.")
    expected = webhook_signature(secret, timestamp, body).partition(",v1=")[2]
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise WebhookVerificationError("The signature does not match the body (wrong secret, or the body was changed).")
    if tolerance is not None:
        age = (time.time() if now is None else now) - timestamp
        if abs(age) > tolerance:
            raise WebhookVerificationError(f"The signature is {int(age)} s old (tolerance {int(tolerance)} s).")
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookVerificationError("The body is not JSON.") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("The body is not a JSON object.")
    return event
