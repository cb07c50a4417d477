"""The fault drill: N messages through the real pipeline while workers are SIGKILLed, Redis and
PostgreSQL are restarted and the MX goes away for 30 s; then every message is checked.

Timeline (offsets from the first send; S = the submission period, sends are paced evenly over it):

    0.10 S  SIGKILL worker A (whole process group), start a replacement
    0.25 S  restart Redis (no persistence: queues, countdowns, rate-limit counters are gone)
    0.40 S  SIGKILL worker B, start a replacement
    0.50 S  stop the MX; start it again 30 s later (connections refused meanwhile)
    0.75 S  restart PostgreSQL (pg_ctl restart -m fast: every connection is cut)
    0.90 S  SIGKILL a worker, start a replacement

Each event waits for the previous one to finish (so the schedule stretches rather than overlaps on
a slow machine). Then the drill waits, bounded, until every accepted message is terminal.
"""

import os
import re
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench import seed
from bench.common import Child, celery_worker_argv, python_argv, wait_for_port
from drills.http import post

CHUNK = 100  # items per batch request
SINGLES_EVERY = 10  # every 10th chunk goes as single POST /v1/messages (with an Idempotency-Key)
BOUNCE_EVERY = 200  # one recipient in 200 is refused by the MX (550): ends `bounced`
REQUEST_RETRY_FOR = 120.0  # seconds a refused/failed request is retried before it counts as failed
SUBMIT_THREADS = 4
MSG_ID_RE = re.compile(r"<(msg_[^@>\s]+)@")
TERMINAL = ("delivered", "bounced", "complained", "suppressed", "errored")


def log(text: str) -> None:
    print(f"drill [{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- the processes the drill kills and restarts -----------------------------------------------


class Workers:
    """Celery workers (solo pool, every queue) and one beat; a killed worker gets a replacement."""

    def __init__(self, children, log_dir: Path, env: dict):
        self.children = children
        self.log_dir = log_dir
        self.env = env
        self.live: list[Child] = []
        self.started = 0
        self.beat: Child | None = None

    def start_worker(self) -> Child:
        name = f"worker{self.started}"
        self.started += 1
        argv = celery_worker_argv(f"drill-{name}", "--pool", "solo")
        child = self.children.start(name, argv, **self.env)
        child.wait_for_log("ready.", timeout=90)
        self.live.append(child)
        return child

    def start_beat(self) -> None:
        argv = python_argv("-m", "celery", "-A", "pufferpost", "beat", "-l", "INFO")
        argv += ["-s", str(self.log_dir / "celerybeat-schedule")]
        self.beat = self.children.start("beat", argv, **self.env)
        self.beat.wait_for_log("beat: Starting", timeout=90)

    def kill(self, index: int) -> str:
        victim = self.live.pop(index % len(self.live))
        pid = victim.popen.pid
        os.killpg(pid, signal.SIGKILL)
        victim.popen.wait(timeout=30)
        self.children.stop(victim)  # closes its log
        replacement = self.start_worker()
        return f"SIGKILLed {victim.name} (pid {pid}); {replacement.name} ready"


class Mx:
    """The loopback MX (drills.mx_proc) on a fixed port, so it can be stopped and started again."""

    def __init__(self, children, port: int, log_file: Path):
        self.children = children
        self.port = port
        self.log_file = log_file
        self.child: Child | None = None
        self.generation = 0

    def start(self) -> None:
        self.generation += 1
        self.child = self.children.start(
            f"mx-{self.generation}", python_argv("-m", "drills.mx_proc", str(self.port), str(self.log_file))
        )
        self.child.wait_for_log("MX READY", timeout=60)
        wait_for_port(self.port, timeout=10, process=self.child)

    def stop(self) -> None:
        if self.child is not None:
            self.children.stop(self.child)
            self.child = None

    def message_ids(self) -> list[str]:
        try:
            return self.log_file.read_text().splitlines()
        except FileNotFoundError:
            return []


# --- submitting through the API ---------------------------------------------------------------


@dataclass
class Submission:
    accepted: dict = field(default_factory=dict)  # seq → message id (the API said 2xx + accepted)
    refused: Counter = field(default_factory=Counter)  # per-item error codes (should stay empty)
    failed: list = field(default_factory=list)  # seqs never acknowledged within REQUEST_RETRY_FOR
    retries: Counter = field(default_factory=Counter)  # why a request was sent again
    requests: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _body(fixture, seq: int) -> dict:
    body = seed.send_body(fixture, seq)
    body["metadata"] = {**body["metadata"], "drill_seq": str(seq)}
    if seq % BOUNCE_EVERY == BOUNCE_EVERY - 1:
        body["to"] = f"bounce-{seq}@{seed.RECIPIENT_DOMAIN}"
    return body


def _with_retries(send, what: str, sub: Submission):
    """Send until a definite answer (2xx); 429, 5xx and connection errors are retried, bounded."""
    deadline = time.monotonic() + REQUEST_RETRY_FOR
    delay = 0.5
    while True:
        reply = send()
        if 200 <= reply.status < 300:
            return reply
        reason = f"{what} {reply.status or 'no answer'}"
        if 400 <= reply.status < 500 and reply.status != 429:
            with sub.lock:
                sub.retries[f"{reason} (not retried)"] += 1
            return reply
        if time.monotonic() + delay > deadline:
            return reply
        with sub.lock:
            sub.retries[reason] += 1
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _send_chunk(port: int, api_key: str, fixture, tag: str, seqs: list[int], singles: bool, sub: Submission):
    auth = {"Authorization": f"Bearer {api_key}"}
    if singles:
        for seq in seqs:
            body = _body(fixture, seq)
            headers = {**auth, "Idempotency-Key": f"{tag}-{seq}"}
            reply = _with_retries(lambda b=body, h=headers: post(port, "/v1/messages", b, headers=h), "single", sub)
            with sub.lock:
                sub.requests["single"] += 1
                if reply.status == 202:
                    sub.accepted[seq] = reply.body["id"]
                elif 400 <= reply.status < 500 and isinstance(reply.body, dict):
                    sub.refused[reply.body.get("error", {}).get("code", str(reply.status))] += 1
                else:
                    sub.failed.append(seq)
        return
    body = {"messages": [_body(fixture, seq) for seq in seqs]}
    reply = _with_retries(lambda: post(port, "/v1/messages/batch", body, headers=auth, timeout=60), "batch", sub)
    with sub.lock:
        sub.requests["batch"] += 1
        if reply.status != 200:
            sub.failed.extend(seqs)
            return
        for item in reply.body["data"]:
            seq = seqs[item["index"]]
            if item["status"] == "accepted":
                sub.accepted[seq] = item["id"]
            else:
                sub.refused[item["error"]["code"]] += 1


def submit(port: int, api_key: str, fixture, *, count: int, seconds: float, tag: str) -> Submission:
    """Send `count` messages paced evenly over `seconds`: 100-item batches, every 10th chunk as singles."""
    sub = Submission()
    chunks = [list(range(start, min(start + CHUNK, count))) for start in range(0, count, CHUNK)]
    started = time.monotonic()
    with ThreadPoolExecutor(SUBMIT_THREADS) as pool:
        futures = []
        for n, seqs in enumerate(chunks):
            due = started + seconds * n / max(1, len(chunks))
            time.sleep(max(0.0, due - time.monotonic()))
            singles = n % SINGLES_EVERY == SINGLES_EVERY - 1
            futures.append(pool.submit(_send_chunk, port, api_key, fixture, tag, seqs, singles, sub))
        for future in futures:
            future.result(timeout=REQUEST_RETRY_FOR * 3 + 600)
    return sub


# --- the schedule ------------------------------------------------------------------------------


@dataclass
class Faults:
    workers: Workers
    redis: object
    postgres: object
    mx: Mx
    outage: float = 30.0
    redis_down: float = 5.0
    timeline: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def _event(self, name: str, action) -> None:
        t0 = time.monotonic()
        at = time.strftime("%H:%M:%S")
        try:
            detail = action() or ""
            took = time.monotonic() - t0
            self.timeline.append((at, name, f"{detail} ({took:.1f} s)".strip()))
            log(f"{name}: {detail} ({took:.1f} s)")
        except Exception as exc:  # the drill reports a fault it could not inject; it does not stop
            self.errors.append(f"{name}: {exc!r}")
            log(f"{name} FAILED: {exc!r}")

    def _mx_outage(self) -> str:
        self.mx.stop()
        time.sleep(self.outage)
        self.mx.start()
        return f"MX stopped for {self.outage:.0f} s, started again"

    def _redis_restart(self) -> str:
        self.redis.restart(down=self.redis_down)
        return f"redis-server stopped, down {self.redis_down:.0f} s, started empty (queues and countdowns gone)"

    def _postgres_restart(self) -> str:
        sql = "SELECT pg_postmaster_start_time()"
        before = query(self.postgres.url, sql)[0][0]
        self.postgres.restart()
        after = query(self.postgres.url, sql)[0][0]
        if after == before:
            raise RuntimeError("pg_ctl restart returned but the postmaster start time did not change")
        return f"pg_ctl restart -m fast; postmaster started {before:%H:%M:%S} → {after:%H:%M:%S}"

    def run(self, seconds: float) -> None:
        plan = [
            (0.10, "SIGKILL worker 1/3", lambda: self.workers.kill(0)),
            (0.25, "restart Redis", self._redis_restart),
            (0.40, "SIGKILL worker 2/3", lambda: self.workers.kill(1)),
            (0.50, "MX outage", self._mx_outage),
            (0.75, "restart PostgreSQL", self._postgres_restart),
            (0.90, "SIGKILL worker 3/3", lambda: self.workers.kill(0)),
        ]
        started = time.monotonic()
        for fraction, name, action in plan:
            time.sleep(max(0.0, started + fraction * seconds - time.monotonic()))
            self._event(name, action)


# --- waiting and checking ----------------------------------------------------------------------


def query(url: str, sql: str, params=(), *, timeout: float = 60.0):
    """One query on a fresh connection, retried while the server is (re)starting."""
    dsn = url.replace("postgres://", "postgresql://", 1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def status_counts(url: str, ids: list[str]) -> Counter:
    rows = query(
        url,
        """SELECT CASE WHEN m.status = 'sent' AND EXISTS (
                   SELECT 1 FROM messaging_messageevent e WHERE e.message_id = m.id AND e.type = 'sent'
                      AND e.detail->>'outcome' = 'unknown') THEN 'sent (outcome unknown)' ELSE m.status END,
                  count(*)
             FROM messaging_message m WHERE m.id = ANY(%s) GROUP BY 1""",
        [ids],
    )
    return Counter(dict(rows))


def wait_terminal(url: str, ids: list[str], *, deadline: float) -> Counter:
    last, last_print = None, 0.0
    while True:
        counts = status_counts(url, ids)
        done = sum(v for k, v in counts.items() if k in TERMINAL or k == "sent (outcome unknown)")
        now = time.monotonic()
        if counts != last and now - last_print > 10:
            log(f"{done:,}/{len(ids):,} terminal: {dict(sorted(counts.items()))}")
            last_print = now
        last = counts
        if done >= len(ids) or now > deadline:
            return counts
        time.sleep(2)


def log_evidence(log_dir: Path) -> dict:
    """How the recovery paths showed up in the workers' logs."""
    patterns = {
        "outbox sweeps that re-enqueued": "Outbox sweeper re-enqueued",
        "delivery sweeps that acted": "delivery sweep:",
        "enqueue failures at commit (outbox sweeper's job)": "Could not enqueue delivery",
        "retry countdowns that could not be scheduled": "could not schedule the retry",
        "claims lost at the commit point (fenced)": "claim lost before DATA",
        "broker connection lost": "Connection to broker lost",
        "tasks failed (e.g. OperationalError)": "raised unexpected",
    }
    found = Counter()
    unknown = requeued = outboxed = 0
    for path in sorted(log_dir.glob("*.log")):
        if not (path.name.startswith("worker") or path.name.startswith("gunicorn") or path.name.startswith("beat")):
            continue
        text = path.read_text(errors="replace")
        for label, needle in patterns.items():
            found[label] += text.count(needle)
        for m in re.finditer(r"delivery sweep: (\d+) unknown outcome\(s\), (\d+) due message\(s\) re-enqueued", text):
            unknown += int(m.group(1))
            requeued += int(m.group(2))
        for m in re.finditer(r"Outbox sweeper re-enqueued (\d+)", text):
            outboxed += int(m.group(1))
    return {
        **found,
        "messages re-enqueued by the outbox sweeper": outboxed,
        "messages re-enqueued by the delivery sweeper": requeued,
        "in-flight attempts the delivery sweeper settled as unknown": unknown,
    }


@dataclass
class MxFindings:
    receptions: int
    seen: set  # message ids (msg_…) the MX accepted
    duplicates: dict  # Message-ID → times received, for those received more than once
    missing: list  # delivered in the database, never received by the MX
    inconsistent: list  # received by the MX, but neither delivered nor sent-unknown (or not a msg_ id)


def mx_findings(lines: list[str], *, delivered: list[str], status_of: dict, unknown: set) -> MxFindings:
    """Compare the MX's Message-ID log with the database.

    `delivered`: ids the database says are delivered; `status_of`: every message's status;
    `unknown`: ids with a `sent` event of outcome unknown.
    """
    counter = Counter(lines)
    seen, unparsable = set(), []
    for line in counter:
        match = MSG_ID_RE.search(line)
        if match:
            seen.add(match.group(1))
        else:
            unparsable.append(line)
    inconsistent = unparsable + [
        i
        for i in sorted(seen)
        if not (status_of.get(i) == "delivered" or (status_of.get(i) == "sent" and i in unknown))
    ]
    return MxFindings(
        receptions=len(lines),
        seen=seen,
        duplicates={k: v for k, v in counter.items() if v > 1},
        missing=[i for i in delivered if i not in seen],
        inconsistent=inconsistent,
    )


@dataclass
class Verdict:
    counts: Counter
    checks: list  # (name, passed, detail)
    info: dict


def verify(url: str, workspace_id: str, sub: Submission, mx_ids: list[str], *, count: int) -> Verdict:
    ids = list(sub.accepted.values())
    counts = status_counts(url, ids)
    in_db = query(url, "SELECT count(*) FROM messaging_message WHERE id = ANY(%s)", [ids])[0][0]
    rows = query(
        url,
        """SELECT m.id, m.status, m.metadata->>'drill_seq',
                  EXISTS (SELECT 1 FROM messaging_messageevent e WHERE e.message_id = m.id AND e.type = 'sent'
                             AND e.detail->>'outcome' = 'unknown')
             FROM messaging_message m WHERE m.workspace_id = %s""",
        [workspace_id],
    )
    status_of = {r[0]: r[1] for r in rows}
    unknown_ids = {r[0] for r in rows if r[1] == "sent" and r[3]}
    per_seq = Counter(r[2] for r in rows)
    extra_copies = sum(n - 1 for n in per_seq.values() if n > 1)
    not_acknowledged = [r[0] for r in rows if r[0] not in set(ids)]

    delivered = [i for i in ids if status_of.get(i) == "delivered"]
    # Anything the MX took (250) must be delivered, or sent with an unknown outcome, in the database.
    all_status = dict(query(url, "SELECT id, status FROM messaging_message"))
    all_unknown = {
        r[0]
        for r in query(
            url,
            "SELECT message_id FROM messaging_messageevent WHERE type = 'sent' AND detail->>'outcome' = 'unknown'",
        )
    }
    mx = mx_findings(mx_ids, delivered=delivered, status_of=all_status, unknown=all_unknown)
    unknown_seen = sum(1 for i in unknown_ids if i in mx.seen)
    nonterminal = {k: v for k, v in counts.items() if k not in TERMINAL and k != "sent (outcome unknown)"}

    checks = [
        (
            f"every message submitted was acknowledged ({len(ids):,}/{count:,})",
            len(ids) == count and not sub.failed and not sub.refused,
            f"{len(ids):,} accepted, {len(sub.failed)} never acknowledged, refused items {dict(sub.refused)}",
        ),
        (
            "none lost: every accepted id is in the database",
            in_db == len(ids),
            f"{in_db:,} of {len(ids):,} accepted ids found",
        ),
        (
            "every accepted message reached a terminal state",
            not nonterminal and in_db == len(ids),
            f"non-terminal: {nonterminal or 'none'}",
        ),
        (
            "the MX saw no Message-ID twice",
            not mx.duplicates,
            f"{mx.receptions:,} receptions, {len(mx.seen):,} distinct, duplicates: {len(mx.duplicates)}"
            + (f" e.g. {list(mx.duplicates.items())[:3]}" if mx.duplicates else ""),
        ),
        (
            "the MX saw every delivered message's Message-ID",
            not mx.missing,
            f"{len(delivered):,} delivered, {len(mx.missing)} missing at the MX"
            + (f" e.g. {mx.missing[:3]}" if mx.missing else ""),
        ),
        (
            "every Message-ID the MX took is delivered or sent (outcome unknown) in the database",
            not mx.inconsistent,
            f"{len(mx.inconsistent)} inconsistent" + (f" e.g. {mx.inconsistent[:3]}" if mx.inconsistent else ""),
        ),
    ]
    deferred = query(
        url,
        "SELECT count(*), count(DISTINCT message_id) FROM messaging_messageevent WHERE type = 'deferred' "
        "AND workspace_id = %s",
        [workspace_id],
    )[0]
    info = {
        "deferred events (messages) while the MX was down": f"{deferred[0]:,} ({deferred[1]:,})",
        "sent (outcome unknown), of which the MX has the Message-ID": f"{len(unknown_ids)}, {unknown_seen}",
        "messages in the workspace not acknowledged to the client (a retried request whose first try committed)": len(
            not_acknowledged
        ),
        "extra copies of one submission (same drill_seq)": extra_copies,
    }
    return Verdict(counts, checks, info)
