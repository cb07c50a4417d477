"""The production settings plus one bare route (the send-path ceiling), for the bench's gunicorn.

Only ROOT_URLCONF differs, so the real endpoints and the ceiling run under the same middleware,
the same database and Redis settings and the same gunicorn workers.
"""

from pufferpost.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
