"""A minimal JSON-over-HTTP client for the drill (stdlib only; loopback only)."""

import http.client
import json
from dataclasses import dataclass, field

from bench.common import LOOPBACK


@dataclass
class Reply:
    status: int  # 0 when no HTTP answer arrived (connection refused, reset, timeout)
    body: object = None
    headers: dict = field(default_factory=dict)
    error: str = ""


def post(port: int, path: str, body, *, headers: dict, timeout: float = 30.0) -> Reply:
    payload = json.dumps(body, separators=(",", ":")).encode()
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("POST", path, body=payload, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:500].decode(errors="replace")
        return Reply(response.status, parsed, {k.lower(): v for k, v in response.getheaders()})
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, error=repr(exc))
    finally:
        conn.close()
