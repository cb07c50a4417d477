"""Retention at constant cost (README "Retention"): purging a month, and reads across months.

1. Purge. One old month holds `--retention-messages` delivered messages (1,000,000 by default),
   each with two events, one delivery attempt and its rendered content; the current month holds a
   few thousand more. `messaging.partitions.purge` runs as beat would 91 days after the month:
   the figures are its time and the size of the six tables before and after (the current month
   must be untouched).
2. Reads. `--retention-rows` messages (10,000,000 by default) one second apart, so they span
   four months and a bit, in the partitioned table; GET /v1/messages first page against a page
   5,000 pages deep (a cursor encoded directly, as in the `reads` workload). Goal: ≤ 1.2×.

Seeding is bench-only SQL: each month is filled with INSERT … SELECT generate_series into a plain
table (ids are real ULIDs of the row's time: Crockford base32 of the millisecond, then a counter),
which is then attached as that month's partition, so its indexes are built once, sorted.
"""

import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.db import connection

from bench.loadgen import http_request, run_load
from bench.workloads.reads import CONCURRENCY, PAGE, _deep_cursor, _get, deep_pages

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MESSAGE_COLUMNS = (
    'id, workspace_id, sender_id, from_address, "to", cc, reply_to, template_id, template_version_id, data, '
    "metadata, tags, locale, timezone, unsubscribe_group_id, status, subject, livemode, attempts, next_attempt_at, "
    "claimed_at, last_response, bounce_class, created_at, updated_at"
)


def _ulid_sql(ms: str, counter: str, prefix: str = "msg_") -> str:
    """SQL for `prefix` + a ULID of millisecond `ms` whose 16 random characters are `counter`'s digits."""
    chars = " || ".join(f"substr('{ALPHABET}', ((({ms}) >> {5 * (9 - k)}) & 31)::int + 1, 1)" for k in range(10))
    return f"('{prefix}' || {chars} || lpad(({counter})::text, 16, '0'))"


def _month_ranges(t0_ms: int, step_ms: int, count: int):
    """[(month start, first i, end i)] for rows i in [0, count) at t0_ms + i * step_ms."""
    from messaging.partitions import add_months, month_start

    out = []
    first = month_start(datetime.fromtimestamp(t0_ms / 1000, UTC))
    last = month_start(datetime.fromtimestamp((t0_ms + (count - 1) * step_ms) / 1000, UTC))
    month = first
    while month <= last:
        lo_ms = int(month.timestamp() * 1000)
        hi_ms = int(add_months(month, 1).timestamp() * 1000)
        lo = max(0, -(-(lo_ms - t0_ms) // step_ms))
        hi = min(count, -(-(hi_ms - t0_ms) // step_ms))
        if hi > lo:
            out.append((month, lo, hi))
        month = add_months(month, 1)
    return out


def _attach(cursor, table: str, month: datetime, fill) -> None:
    """Create `table`'s partition for `month` as a plain table, fill it, attach it (indexes built then)."""
    from messaging.partitions import add_months, bound, partition_name

    name = partition_name(table, month)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if cursor.fetchone()[0]:
        fill(name)  # the month exists already (e.g. the current one): rows go in as they would live
        return
    cursor.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    fill(name)
    cursor.execute(
        f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
        [bound(month), bound(add_months(month, 1))],
    )


def load(fixture, *, t0: datetime, step_ms: int, count: int, children: bool, status: str = "delivered") -> float:
    """Insert `count` messages from `t0`, one every `step_ms`; with `children`, their events,
    attempt and content too. Returns seconds taken."""
    t0_ms = int(t0.timestamp() * 1000)
    data = json.dumps({"name": "Customer", "order": {"number": "O-100000", "total": "149.40"}})
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for month, lo, hi in _month_ranges(t0_ms, step_ms, count):
            ms = f"({t0_ms}::bigint + i::bigint * {step_ms})"
            ts = f"to_timestamp({ms} / 1000.0)"
            mid = _ulid_sql(ms, "i")
            params = {
                "lo": lo,
                "hi": hi - 1,
                "ws": fixture.workspace_id,
                "senders": fixture.sender_ids,
                "froms": fixture.from_addresses,
                "n": len(fixture.sender_ids),
                "templates": fixture.template_ids,
                "versions": fixture.template_version_pks,
                "nt": len(fixture.template_ids),
                "data": data,
                "status": status,
            }

            def messages(name, mid=mid, ts=ts, params=params):
                cursor.execute(
                    f"""INSERT INTO {name} ({MESSAGE_COLUMNS})
                        SELECT {mid}, %(ws)s, (%(senders)s::text[])[1 + i %% %(n)s],
                               (%(froms)s::text[])[1 + i %% %(n)s], 'user' || (i %% 50000) || '@example.test',
                               '{{}}', NULL, (%(templates)s::text[])[1 + i %% %(nt)s],
                               (%(versions)s::bigint[])[1 + i %% %(nt)s], %(data)s::jsonb,
                               '{{"source": "bench"}}', '{{}}', 'en', 'UTC', NULL, %(status)s,
                               'Your order O-' || (100000 + i) || ' is confirmed', true, 1, NULL, NULL,
                               '250 2.0.0 OK: queued', '', {ts}, {ts} + interval '3 seconds'
                          FROM generate_series(%(lo)s, %(hi)s) AS i""",
                    params,
                )

            _attach(cursor, "messaging_message", month, messages)
            if not children:
                continue

            def events(name, mid=mid, ms=ms, ts=ts, params=params):
                cursor.execute(
                    f"""INSERT INTO {name} (id, message_id, workspace_id, type, occurred_at, recorded_at, detail)
                        SELECT {_ulid_sql(ms, "i * 2 + e", "evt_")}, {mid}, %(ws)s,
                               CASE e WHEN 0 THEN 'accepted' ELSE 'delivered' END,
                               {ts} + e * interval '2 seconds', {ts} + e * interval '2 seconds',
                               CASE e WHEN 0 THEN '{{}}'::jsonb ELSE
                               '{{"code": 250, "response": "2.0.0 Ok: queued", "mx_host": "mx.example.test"}}'::jsonb END
                          FROM generate_series(%(lo)s, %(hi)s) AS i, generate_series(0, 1) AS e""",
                    params,
                )

            def attempts(name, mid=mid, ts=ts, params=params):
                cursor.execute(
                    f"""INSERT INTO {name} (id, message_id, state, started_at, finished_at, mx_host, response, recipients)
                        SELECT nextval(pg_get_serial_sequence('messaging_deliveryattempt', 'id')), {mid}, 'succeeded', {ts}, {ts} + interval '1 second', 'mx.example.test',
                               '250 2.0.0 Ok', '{{"user@example.test": {{"outcome": "delivered", "code": 250}}}}'
                          FROM generate_series(%(lo)s, %(hi)s) AS i""",
                    params,
                )

            def content(name, mid=mid, ts=ts, params=params):
                cursor.execute(
                    f"""INSERT INTO {name} (message_id, subject, text, html, built_at)
                        SELECT {mid}, 'Your order O-' || (100000 + i) || ' is confirmed',
                               repeat('Thanks for your order. ', 20), repeat('<p>Thanks for your order.</p>', 20), {ts}
                          FROM generate_series(%(lo)s, %(hi)s) AS i""",
                    params,
                )

            _attach(cursor, "messaging_messageevent", month, events)
            _attach(cursor, "messaging_deliveryattempt", month, attempts)
            _attach(cursor, "messaging_messagecontent", month, content)
        cursor.execute("SET synchronous_commit = on")
    old_autocommit = connection.get_autocommit()
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_message")
        if children:
            cursor.execute("ANALYZE messaging_messageevent")
    connection.set_autocommit(old_autocommit)
    return time.perf_counter() - started


def _sizes() -> dict[str, int]:
    from messaging.partitions import status

    sizes: dict[str, int] = {}
    for row in status():
        sizes[row["table"]] = sizes.get(row["table"], 0) + row["bytes"]
    return sizes


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def purge_case(ctx) -> dict:
    from messaging import partitions

    fixture = ctx.fixture
    count = ctx.args.retention_messages
    now = datetime.now(UTC)
    month = partitions.add_months(partitions.month_start(now), -4)
    # One month: `count` messages spread over its first 28 days.
    step_ms = max(1, int(28 * 86400 * 1000 / count))
    seconds = load(fixture, t0=month + timedelta(minutes=1), step_ms=step_ms, count=count, children=True)
    current = load(fixture, t0=now - timedelta(hours=2), step_ms=1000, count=3000, children=True)
    before = _sizes()
    kept_before = _count("messaging_message") - count
    t0 = time.perf_counter()
    report = partitions.purge(now=partitions.add_months(month, 1) + timedelta(days=91))
    purge_s = time.perf_counter() - t0
    after = _sizes()
    dropped = [m for m in report.months if m.action == "dropped"]
    if [m.month for m in dropped] != [f"{month:%Y-%m}"] or dropped[0].messages != count:
        raise RuntimeError(f"the purge did not drop exactly the seeded month: {report.as_lines()}")
    kept_after = _count("messaging_message")
    if kept_after != kept_before:
        raise RuntimeError(f"the purge touched other months: {kept_before} messages before, {kept_after} after")
    return {
        "messages": count,
        "seed_s": round(seconds + current, 1),
        "purge_s": round(purge_s, 3),
        "bytes_before": before,
        "bytes_after": after,
        "report": report.as_lines(),
        "kept_messages": kept_after,
    }


def reads_case(ctx) -> dict:
    fixture = ctx.fixture
    count = ctx.args.retention_rows
    ws = fixture.workspace_id
    port = ctx.web()  # its workers boot while the rows load
    from messaging.partitions import month_start

    # Whole months before the current one (the purge case's newest rows are in the current month).
    end = month_start(datetime.now(UTC)) - timedelta(hours=1)
    step_ms = 1000
    t0 = end - timedelta(milliseconds=step_ms * count)
    # The purge case's current month rows stay; they are newer than these.
    seconds = load(fixture, t0=t0, step_ms=step_ms, count=count, children=False)
    total = _count("messaging_message")
    pages = deep_pages(total)
    cases = {"first page": None, f"{pages:,} pages deep": _deep_cursor(ws, {}, {}, pages)}
    headers = {**ctx.auth(), "Host": f"127.0.0.1:{port}"}
    results = {"rows": total, "load_s": round(seconds, 1), "partitions": _months_holding(), "cases": {}}
    n = ctx.args.read_count
    for name, cursor in cases.items():
        query = {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
        path = "/v1/messages?" + urlencode(query)
        status, body = _first_get(port, path, headers)
        if status != 200 or len(body.get("data", [])) != PAGE:
            raise RuntimeError(f"GET {name} answered {status}: {str(body)[:300]}")
        requests = [http_request("GET", path, headers=ctx.auth(), port=port) for _ in range(n)]
        run_load(port, requests[: max(10, n // 10)], concurrency=CONCURRENCY)
        results["cases"][name] = run_load(port, requests, concurrency=CONCURRENCY).summary()
    return results


def _first_get(port: int, path: str, headers: dict):
    """The first answer, waiting (bounded: 3 tries) for gunicorn workers still booting on a busy machine."""
    for attempt in range(3):
        try:
            return _get(port, path, headers)
        except TimeoutError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _months_holding() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'messaging_message'::regclass AND c.reltuples > 0"""
        )
        return cursor.fetchone()[0]


def run(ctx) -> None:
    purge = purge_case(ctx)
    ctx.details["retention_purge"] = purge
    mib = 2**20
    total_before = sum(purge["bytes_before"].values()) / mib
    total_after = sum(purge["bytes_after"].values()) / mib
    ctx.row(
        "retention", f"seed a month: {purge['messages']:,} messages + events, attempts, content", purge["seed_s"], "s"
    )
    ctx.row("retention", f"purge the month ({purge['messages']:,} messages)", purge["purge_s"], "s")
    ctx.row("retention", "message tables before purge", round(total_before, 1), "MiB")
    ctx.row("retention", "message tables after purge", round(total_after, 1), "MiB")
    ctx.row(
        "retention",
        "messaging_message before / after",
        f"{purge['bytes_before']['messaging_message'] / mib:,.1f} / {purge['bytes_after']['messaging_message'] / mib:,.1f}",
        "MiB",
    )
    reads = reads_case(ctx)
    ctx.details["retention_reads"] = reads
    ctx.row(
        "retention", f"load {reads['rows']:,} rows over {reads['partitions']} monthly partitions", reads["load_s"], "s"
    )
    names = list(reads["cases"])
    first, deep = reads["cases"][names[0]], reads["cases"][names[1]]
    for key in ("p50_ms", "p99_ms"):
        ratio = deep[key] / first[key] if first.get(key) else None
        ctx.row(
            "retention",
            f"{names[1]} vs first page {key[:3]} (c={CONCURRENCY})",
            deep[key],
            "ms",
            first[key],
            round(ratio, 2) if ratio else None,
            "≤ 1.2×" if key == "p50_ms" else "",
            (ratio <= 1.2) if ratio and key == "p50_ms" else None,
        )
