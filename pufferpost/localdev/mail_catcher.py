"""The `make up` mail catcher: every message lands in a directory as an .eml file (never delivered on).

Each message is stored exactly as received (signed bytes untouched) as `<stamp>-<n>.eml`, with
its envelope in a `<stamp>-<n>.json` sidecar. Recipients whose local part starts with `bounce`
are refused (550) and `defer…` deferred (451), so the bounce and retry paths can be seen locally.
"""

import itertools
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from pufferpost.localdev.smtp_server import LoopbackSmtpServer, Received, RecordingHandler, by_local_part_prefix


class MailDirectory:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def save(self, item: Received) -> Path:
        now = datetime.now(UTC)
        with self._lock:
            stem = f"{now:%Y%m%dT%H%M%S%f}-{next(self._counter):06d}"
        envelope = {
            "mail_from": item.mail_from,
            "rcpt_tos": item.rcpt_tos,
            "peer": list(item.peer) if item.peer else None,
            "received_at": now.isoformat(),
        }
        eml = self.directory / f"{stem}.eml"
        self._write(self.directory / f"{stem}.json", json.dumps(envelope, indent=2).encode())
        # The .eml appears last and atomically: whoever watches the directory sees whole messages.
        self._write(eml, item.content)
        return eml

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


def mail_catcher(directory: Path, *, host: str = "127.0.0.1", port: int = 2525) -> LoopbackSmtpServer:
    """An unstarted catcher server; `.start()` it, read `.port`, `.stop()` it."""
    store = MailDirectory(directory)
    handler = RecordingHandler(rule_for=by_local_part_prefix, on_message=store.save, keep=False)
    return LoopbackSmtpServer(handler, host=host, port=port)
