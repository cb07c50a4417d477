"""The drill's loopback MX in its own process: `python -m drills.mx_proc PORT LOG_FILE`.

An aiosmtpd server (pufferpost.localdev.smtp_server) with the mail catcher's rule: `bounce…@`
is refused with 550, everything else accepted. For every accepted message it appends the
Message-ID header to LOG_FILE (one line, O_APPEND) and fsyncs it *before* answering 250, so the
log holds every message the MX ever said yes to, across stops and restarts of this process.
Prints `MX READY <port>`; stops on SIGTERM (the drill stops it for its outage and starts it again).
"""

import os
import signal
import sys
import threading
from email.parser import BytesHeaderParser

from pufferpost.localdev.smtp_server import LoopbackSmtpServer, RecordingHandler, by_local_part_prefix


def message_id_of(content: bytes) -> str:
    head = content.split(b"\r\n\r\n", 1)[0]
    value = BytesHeaderParser().parsebytes(head + b"\r\n\r\n").get("Message-ID", "")
    return " ".join(str(value).split()) or "<missing>"


def main(port: int, log_file: str) -> None:
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    lock = threading.Lock()

    def on_message(item) -> None:
        line = (message_id_of(item.content) + "\n").encode()
        with lock:
            os.write(fd, line)
            os.fsync(fd)

    server = LoopbackSmtpServer(
        RecordingHandler(rule_for=by_local_part_prefix, keep=False, on_message=on_message), port=port
    )
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"MX READY {server.port}", flush=True)
    try:
        stop.wait(timeout=3600)  # never outlives the drill by more than an hour
    finally:
        server.stop()
        os.close(fd)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
