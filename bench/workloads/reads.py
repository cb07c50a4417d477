"""Reads at scale: GET /v1/messages on a table of `--messages` rows (1,000,000 by default).

The rows are made by one INSERT … SELECT generate_series (all indexes in place, as in
production), then VACUUM ANALYZE. A page 5,000 pages deep (half the pages on a smaller table) is reached with a cursor encoded
directly (pufferpost.pagination.encode_cursor) on the row at offset 125,000, not by walking.
"""

import http.client
import json
import time
from types import SimpleNamespace
from urllib.parse import urlencode

from django.db import connection

from bench import seed
from bench.loadgen import http_request, run_load

PAGE = 25
DEEP_PAGES = 5000
CONCURRENCY = 4
SPACING_SECONDS = 2  # created_at step between generated rows: 1M rows span about 23 days


def bulk_load(fixture, count: int) -> float:
    """Insert `count` messages into the bench workspace; returns seconds taken."""
    data = json.dumps(seed.send_data(0))
    metadata = json.dumps({"order_id": "O-100000", "source": "bench"})
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute(
            """
            INSERT INTO messaging_message (
                id, workspace_id, sender_id, from_address, "to", cc, reply_to, template_id,
                template_version_id, data, metadata, tags, locale, timezone, unsubscribe_group_id,
                status, subject, attempts, next_attempt_at, last_response, created_at, updated_at,
                livemode, bounce_class)
            SELECT
                'msg_' || lpad((%(count)s - i)::text, 26, '0'),
                %(ws)s,
                (%(senders)s::text[])[1 + i %% %(nsenders)s],
                (%(froms)s::text[])[1 + i %% %(nsenders)s],
                'user' || (i %% 50000) || '@example.test',
                '{}', NULL,
                (%(templates)s::text[])[1 + i %% %(ntemplates)s],
                (%(versions)s::bigint[])[1 + i %% %(ntemplates)s],
                %(data)s::jsonb, %(metadata)s::jsonb, '{}', 'en', 'Europe/Berlin', NULL,
                CASE WHEN i %% 50 = 7 THEN 'bounced' WHEN i %% 500 = 3 THEN 'complained' ELSE 'delivered' END,
                'Your order O-' || (100000 + i) || ' is confirmed',
                1, NULL, '250 2.0.0 OK: queued',
                now() - interval '1 hour' - i * interval '%(spacing)s seconds',
                now() - interval '1 hour' - i * interval '%(spacing)s seconds' + interval '3 seconds',
                true, CASE WHEN i %% 50 = 7 THEN 'hard' ELSE '' END
            FROM generate_series(1, %(count)s) AS i
            """,
            {
                "count": count,
                "ws": fixture.workspace_id,
                "senders": fixture.sender_ids,
                "froms": fixture.from_addresses,
                "nsenders": len(fixture.sender_ids),
                "templates": fixture.template_ids,
                "versions": fixture.template_version_pks,
                "ntemplates": len(fixture.template_ids),
                "data": data,
                "metadata": metadata,
                "spacing": SPACING_SECONDS,
            },
        )
        cursor.execute("SET synchronous_commit = on")
    # Autovacuum would get there eventually; a fresh visibility map and statistics are the steady state.
    old_autocommit = connection.get_autocommit()
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE messaging_message")
    connection.set_autocommit(old_autocommit)
    return time.perf_counter() - started


def _scope(workspace_id: str, filters: dict) -> str:
    # Mirrors MessageViewSet.list: the cursor is bound to the workspace and the filters.
    return "messages:" + workspace_id + ":" + repr(sorted((k, str(v)) for k, v in filters.items()))


def deep_pages(matching_rows: int) -> int:
    """5,000 pages, or (on a smaller table, e.g. --quick) half of the pages there are."""
    return max(1, min(DEEP_PAGES, matching_rows // PAGE // 2))


def _deep_cursor(workspace_id: str, filters: dict, column_filters: dict, pages: int) -> str:
    from pufferpost.pagination import encode_cursor

    where = " AND ".join(f'"{column}" = %s' for column in column_filters)
    sql = "SELECT id, created_at FROM messaging_message WHERE workspace_id = %s"
    sql += (" AND " + where if where else "") + " ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, [workspace_id, *column_filters.values(), PAGE * pages - 1])
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError(f"fewer than {PAGE * pages} rows match {column_filters}; raise --messages")
    return encode_cursor(SimpleNamespace(pk=row[0], created_at=row[1]), _scope(workspace_id, filters))


def _get(port: int, path: str, headers: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def run(ctx) -> None:
    fixture = ctx.fixture
    count = ctx.args.messages
    load_seconds = bulk_load(fixture, count)
    port = ctx.web()
    ws = fixture.workspace_id
    sender = fixture.from_addresses[0]
    template = fixture.template_ids[0]
    recipient = "user123@example.test"
    deep_all = deep_pages(count)
    deep_from = deep_pages(count // len(fixture.from_addresses))
    # name: (query parameters, cursor, the case it is compared with)
    cases = {
        "first page": ({}, None, None),
        f"{deep_all:,} pages deep": ({}, _deep_cursor(ws, {}, {}, deep_all), "first page"),
        "status=bounced": ({"status": "bounced"}, None, None),
        "recipient=…": ({"recipient": recipient}, None, None),
        "from=…": ({"from": sender}, None, None),
        f"from=… {deep_from:,} pages deep": (
            {"from": sender},
            _deep_cursor(ws, {"from_address": sender}, {"from_address": sender}, deep_from),
            "from=…",
        ),
        "templateId=…": ({"templateId": template}, None, None),
    }
    results = {"rows": count, "bulk_load_s": round(load_seconds, 1), "concurrency": CONCURRENCY, "cases": {}}
    headers = {**ctx.auth(), "Host": f"127.0.0.1:{port}"}
    n = ctx.args.read_count
    for name, (params, cursor, _) in cases.items():
        query = {**params, "limit": PAGE}
        if cursor:
            query["cursor"] = cursor
        path = "/v1/messages?" + urlencode(query)
        status, body = _get(port, path, headers)
        if status != 200 or not body.get("data"):
            raise RuntimeError(f"GET {name} answered {status}: {str(body)[:300]}")
        requests = [http_request("GET", path, headers=ctx.auth(), port=port) for _ in range(n)]
        run_load(port, requests[: max(10, n // 10)], concurrency=CONCURRENCY)
        summary = run_load(port, requests, concurrency=CONCURRENCY).summary()
        summary["rows_on_page"] = len(body["data"])
        results["cases"][name] = summary
    ctx.details["reads"] = results
    ctx.row("reads", f"bulk load {count:,} rows", results["bulk_load_s"], "s")
    for name, summary in results["cases"].items():
        compared_with = cases[name][2]
        deep = compared_with is not None
        base = results["cases"][compared_with] if deep else None
        ratio = summary["p50_ms"] / base["p50_ms"] if base and base.get("p50_ms") else None
        ctx.row(
            "reads",
            f"{name} p50 (c={CONCURRENCY})",
            summary["p50_ms"],
            "ms",
            base["p50_ms"] if base else None,
            round(ratio, 2) if ratio else None,
            "deep ≤ 1.5× first" if deep else "",
            (ratio <= 1.5) if ratio else None,
        )
        ctx.row(
            "reads",
            f"{name} p99",
            summary["p99_ms"],
            "ms",
            base["p99_ms"] if base else None,
            round(summary["p99_ms"] / base["p99_ms"], 2) if base and base.get("p99_ms") else None,
        )
