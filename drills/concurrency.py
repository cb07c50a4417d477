"""The two concurrency checks: one Idempotency-Key sent 50 times at once, and the per-minute rate
limit under 4 processes sending at the same time. Both go through the real API (gunicorn).
"""

import contextlib
import multiprocessing
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from drills.http import post

IDEMPOTENT_SENDS = 50
RATE_LIMIT = 100
RATE_PROCESSES = 4
RATE_REQUESTS_PER_PROCESS = 60
WINDOW = 60  # messaging.limits.WINDOW_SECONDS
# The burst must fit in one window: start in the current window only with this many seconds left.
MIN_SECONDS_LEFT = 20


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    counts: dict = field(default_factory=dict)


def idempotency(port: int, api_key: str, body: dict, *, workspace_id: str) -> Check:
    """50 threads POST the same body with the same Idempotency-Key, released together by a barrier."""
    from messaging.models import Message

    key = f"drill-same-key-{time.time_ns()}"
    barrier = threading.Barrier(IDEMPOTENT_SENDS)
    replies = [None] * IDEMPOTENT_SENDS
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": key}

    def one(n: int) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=30)
        replies[n] = post(port, "/v1/messages", body, headers=headers, timeout=60)

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in range(IDEMPOTENT_SENDS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    statuses = Counter(r.status if r is not None else -1 for r in replies)
    ids = Counter(r.body.get("id") for r in replies if r is not None and r.status == 202 and isinstance(r.body, dict))
    replayed = sum(1 for r in replies if r is not None and r.headers.get("idempotent-replayed") == "true")
    in_db = Message.objects.filter(workspace_id=workspace_id, to=body["to"]).count()
    passed = in_db == 1 and len(ids) == 1 and statuses.get(202, 0) == IDEMPOTENT_SENDS
    counts = {
        "requests": IDEMPOTENT_SENDS,
        "statuses": dict(sorted(statuses.items())),
        "distinct_ids_returned": len(ids),
        "replayed": replayed,
        "messages_in_db": in_db,
    }
    detail = (
        f"{IDEMPOTENT_SENDS} concurrent sends, one key: statuses {dict(sorted(statuses.items()))}, "
        f"{len(ids)} distinct id(s) returned, {replayed} marked Idempotent-Replayed, {in_db} message(s) in the database"
    )
    return Check("50 concurrent same-key sends create one message", passed, detail, counts)


def _rate_child(port: int, api_key: str, bodies: list, start_at: float, results) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    out = []
    for body in bodies:
        reply = post(port, "/v1/messages", body, headers={"Authorization": f"Bearer {api_key}"}, timeout=60)
        out.append((reply.status, reply.headers.get("ratelimit-reset"), reply.error[:200]))
    results.put(out)


def _start_time() -> float:
    """Now (plus a moment for the children to start), or the next window when this one is nearly over."""
    now = time.time()
    start = now + 3
    window_end = (int(start) // WINDOW + 1) * WINDOW
    if window_end - start < MIN_SECONDS_LEFT:
        start = window_end + 0.5
    return start


def rate_limit(port: int, api_key: str, make_body, *, workspace_id: str) -> Check:
    """4 processes × 60 sends against a workspace limited to 100 a minute, started together.

    Counted per fixed window (the RateLimit-Reset header names the window a request fell in), so a
    burst that straddles a minute boundary is still judged exactly: accepted == min(limit, requests)
    in each window.
    """
    from messaging.models import Message

    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    start_at = _start_time()
    per = RATE_REQUESTS_PER_PROCESS
    processes = [
        spawn.Process(
            target=_rate_child,
            args=(port, api_key, [make_body(p * per + i) for i in range(per)], start_at, results),
            daemon=True,
        )
        for p in range(RATE_PROCESSES)
    ]
    replies = []
    try:
        for process in processes:
            process.start()
        for _ in processes:
            replies.extend(results.get(timeout=240))
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    statuses = Counter(status for status, _, _ in replies)
    windows: dict[str, Counter] = {}
    for status, reset, _ in replies:
        windows.setdefault(reset or "?", Counter())[status] += 1
    expected = sum(min(RATE_LIMIT, sum(c.values())) for w, c in windows.items() if w != "?")
    accepted = statuses.get(202, 0)
    limited = statuses.get(429, 0)
    in_db = Message.objects.filter(workspace_id=workspace_id).count()
    passed = (
        "?" not in windows
        and accepted == expected
        and accepted + limited == len(replies) == RATE_PROCESSES * per
        and in_db == accepted
        and all(c.get(202, 0) <= RATE_LIMIT for c in windows.values())
    )
    counts = {
        "requests": len(replies),
        "statuses": dict(sorted(statuses.items())),
        "windows": {w: dict(sorted(c.items())) for w, c in sorted(windows.items())},
        "expected_accepted": expected,
        "messages_in_db": in_db,
    }
    detail = (
        f"{RATE_PROCESSES} processes × {per} sends, limit {RATE_LIMIT}/min: {accepted} accepted (expected {expected}), "
        f"{limited} rate-limited (429), {len(windows)} window(s) {counts['windows']}, {in_db} message(s) in the database"
    )
    return Check(f"rate limit holds exactly across {RATE_PROCESSES} processes", passed, detail, counts)
