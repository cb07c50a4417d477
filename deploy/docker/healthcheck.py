"""The image's HEALTHCHECK: GET /healthz on the web process's own port, with a Host header that
DJANGO_ALLOWED_HOSTS admits (Django answers 400 to any other). Exit 0 when it answers 200."""

import os
import sys
import urllib.request


def host_header() -> str:
    for entry in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(","):
        entry = entry.strip()
        if entry and entry != "*":
            return ("healthcheck" + entry) if entry.startswith(".") else entry
    return "localhost"


def main() -> int:
    bind = os.environ.get("PUFFERPOST_WEB_BIND", "0.0.0.0:8000")
    port = bind.rsplit(":", 1)[-1]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": host_header()})
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
