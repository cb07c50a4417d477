"""The loopback DNS server in its own process: `python -m bench.dns_proc ZONE.json`.

ZONE.json is a list of [name, type, value] (MX values as [preference, host]). Prints
`DNS READY <port>` once both UDP and TCP listen on 127.0.0.1; stops on SIGTERM.
"""

import json
import signal
import sys
import threading

from pufferpost.localdev.dns_server import LoopbackDnsServer


def main(zone_path: str) -> None:
    with open(zone_path) as handle:
        records = [
            (name, rtype, tuple(value) if isinstance(value, list) else value)
            for name, rtype, value in json.load(handle)
        ]
    server = LoopbackDnsServer().start()
    server.zone.replace_all(records)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"DNS READY {server.port} ({len(records)} records)", flush=True)
    try:
        stop.wait(timeout=3600)  # never outlives the bench by more than an hour
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1])
