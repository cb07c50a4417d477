"""Client TLS contexts for outbound SMTP and HTTPS, built once per process.

Building a context loads the system trust store: about 20 ms of CPU, which had been paid on every
SMTP connection and every webhook request (more than signing and sending a message together). A
context is safe to share between threads once configured, so each process keeps one verifying
context (the system store plus PUFFERPOST_TLS_CA_FILE, a test or dev CA) and one that encrypts
without checking the certificate (opportunistic TLS to an MX, RFC 7435). A changed CA file (path
or modification time) builds new ones.
"""

import os
import ssl
import threading

from django.conf import settings

_contexts: dict[tuple, ssl.SSLContext] = {}
_lock = threading.Lock()


def client_context(*, verify: bool = True) -> ssl.SSLContext:
    """The process's shared client context: certificate and host name checked, or (verify=False)
    encryption only. Callers must not change it."""
    ca_file = settings.PUFFERPOST_TLS_CA_FILE
    try:
        stamp = os.stat(ca_file).st_mtime_ns if ca_file else None
    except OSError:
        stamp = None  # load_verify_locations below raises the real error
    key = (ca_file, stamp, verify)
    with _lock:
        context = _contexts.get(key)
        if context is None:
            context = ssl.create_default_context()
            if ca_file:
                context.load_verify_locations(cafile=ca_file)
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            _contexts[key] = context
        return context
