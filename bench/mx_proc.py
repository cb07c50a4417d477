"""The loopback MX in its own process: `python -m bench.mx_proc PORT COUNT_FILE`.

An aiosmtpd sink (pufferpost.localdev.smtp_server) that keeps nothing in memory and writes how
many messages it has accepted to COUNT_FILE every 0.2 s. Prints `MX READY <port>`; stops on SIGTERM.
"""

import signal
import sys
import threading
from pathlib import Path

from pufferpost.localdev.smtp_server import LoopbackSmtpServer, RecordingHandler


def main(port: int, count_file: str) -> None:
    received = [0]
    lock = threading.Lock()

    def on_message(item) -> None:
        with lock:
            received[0] += 1

    server = LoopbackSmtpServer(RecordingHandler(keep=False, on_message=on_message), port=port)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    path = Path(count_file)
    print(f"MX READY {server.port}", flush=True)
    try:
        for _ in range(3600 * 5):  # at most an hour
            path.write_text(str(received[0]))
            if stop.wait(timeout=0.2):
                break
        path.write_text(str(received[0]))
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
