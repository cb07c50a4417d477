"""Delivery in a realistic world: the weighted recipient mix against MX hosts that push back.

The receiving world (`pufferpost.localdev.world`) runs in the harness process: a Google-like
destination (5 connections per client address, TLS required, a per-minute rate with the 4.7.28
throttle and a penalty), a Microsoft-like one (5 connections, its own rate and 4.7.650), a
Yahoo-like one (20 per connection, [TSS04]) and a long tail of small domains with their own rates.
The workers' shaping file gives each destination a budget 5 % under the world's limit, as an
operator would after reading a provider's published numbers.

The world's rates are fixed (not scaled with the count): the Google-like share sets the ceiling
(about 75 msg/s for the mix), so 20,000 messages take about 4.5 minutes and 2,000 (`--quick`)
about half a minute. Mail is offered at a steady ACCEPT_RATE, faster than the Google-like budget,
so its backlog grows while it is paced: the big destination is held back for most of the run.

Reported: delivered/s; the aggregate rate the world's limits allow for this mix (the ceiling:
N / the longest time any provider's share needs at its rate) and the ratio (goal ≥ 0.9×); limit
violations seen by the world (throttle replies, refused connections, a cap exceeded; goal 0);
accept → delivered p50/p99 of long-tail mail alone (offered at the rate it arrives in the mix, with
nothing else) and beside the throttled big destination (goal: within 1.5×).
"""

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench import seed
from bench.common import celery_worker_argv, delivery_worker_env, percentile
from bench.loadgen import http_request, run_load
from bench.workloads.delivery import _observe, _recent_ids, start_dns

MARGIN = 0.95  # the shaper's budget under the world's limit
TAIL_DOMAINS = 40
ACCEPT_RATE = 100.0  # messages a second offered to the API (batches of ACCEPT_BATCH)
ACCEPT_BATCH = 50
TAIL_ALONE_SECONDS = 15.0
TAIL_SHARE = 1.0 - 0.67 - 0.09 - 0.06


def providers(count: int):
    """The world: the Google-like rate (3,000 a minute per client address) sets the ceiling; the
    others allow half again what their share of the mix needs, so they are never the bottleneck."""
    from pufferpost.localdev import world as w

    google = w.google(rate_per_minute=3000, max_messages_per_connection=100, penalty_seconds=120)
    microsoft = w.microsoft(rate_per_minute=600, penalty_seconds=120)
    yahoo = w.yahoo(rate_per_minute=420, penalty_seconds=120)
    tail = w.long_tail(TAIL_DOMAINS, rate_per_minute=240, max_connections=10)
    return [google, microsoft, yahoo, *tail]


def shaping_file(ctx, world) -> str:
    destinations = {}
    for p in world.providers.values():
        entry = {"per_minute": int(p.rate_per_minute * MARGIN)} if p.rate_per_minute else {}
        if p.name in ("google", "microsoft", "yahoo"):
            destinations[p.name] = entry
        else:
            # Each long-tail domain is its own destination; give them the world's limits too.
            destinations[f"tail-{p.name}"] = {"mx_suffixes": p.mx_hosts, **entry}
    path = ctx.log_dir / "shaping.json"
    path.write_text(json.dumps({"destinations": destinations}))
    return str(path)


def allowed_rate(world, recipients: list[str]) -> float:
    """Messages a second the world's limits allow for this mix: the slowest provider's share sets it."""
    counts = {}
    for r in recipients:
        name = world.provider_of(r)
        counts[name] = counts.get(name, 0) + 1
    longest = max(n / (world.providers[name].rate_per_minute / 60.0) for name, n in counts.items())
    return len(recipients) / longest


def violations(world) -> dict:
    log = world.log
    found = {
        "throttle_replies": sum(
            len(log.replies_matching(t)) for t in ("4.7.28", "4.7.650", "[TSS04]", "Try again later, closing")
        ),
        "refused_connections": len(log.replies_matching("Too many connections")),
        "over_messages_per_connection": len(log.replies_matching("Too many messages on this connection")),
        "over_connection_cap": sum(
            1 for p in world.providers.values() if p.max_connections and log.max_concurrent(p.name) > p.max_connections
        ),
        "plaintext_to_tls_required": sum(
            len(log.plaintext_transactions(p.name)) for p in world.providers.values() if p.require_tls
        ),
    }
    found["total"] = sum(found.values())
    return found


def _accept(ctx, port: int, recipients: list[str], offset: int, *, rate: float = ACCEPT_RATE) -> tuple[float, int]:
    """Offer `recipients` to the batch API at `rate` messages a second (batches of ACCEPT_BATCH on
    a fixed schedule, two requests in flight at most); (the seconds acceptance took, requests that
    failed). What was accepted is read back from the database, so a failed request only shrinks N."""
    batches = [
        _one_batch(ctx, port, recipients[start : start + ACCEPT_BATCH], offset + start)
        for start in range(0, len(recipients), ACCEPT_BATCH)
    ]
    interval = ACCEPT_BATCH / rate
    started = time.monotonic()
    failures = []
    lock = threading.Lock()

    def send(request):
        result = run_load(port, [request], concurrency=1, expect=(200,), total_timeout=120)
        if result.errors or set(result.statuses) - {200}:
            with lock:
                failures.append(result.unexpected_sample or str(result.statuses))

    with ThreadPoolExecutor(max_workers=2) as pool:
        for n, request in enumerate(batches):
            delay = started + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, request)
    if failures:
        print(f"world: {len(failures)} batch request(s) failed, e.g. {failures[0][:300]}", flush=True)
    return time.monotonic() - started, len(failures)


def _one_batch(ctx, port: int, recipients: list[str], offset: int) -> bytes:
    messages = []
    for i, to in enumerate(recipients):
        body = seed.send_body(ctx.fixture, offset + i)
        body["to"] = to
        messages.append(body)
    return http_request("POST", "/v1/messages/batch", body={"messages": messages}, headers=ctx.auth(), port=port)


def _latencies(ids: list[str]) -> list[float]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT extract(epoch FROM e.occurred_at - m.created_at) FROM messaging_message m
               JOIN messaging_messageevent e ON e.message_id = m.id AND e.type = 'delivered'
               WHERE m.id = ANY(%s)""",
            [ids],
        )
        return [float(row[0]) for row in cursor.fetchall()]


def run(ctx) -> None:
    from django.utils import timezone

    from messaging.delivery.dkim import public_key_txt
    from messaging.models import Message
    from pufferpost.localdev.world import World

    count = ctx.args.world_count
    world = World(providers(count), keep_content=False, seed=7).start()
    details = {"messages": count, "world_port": world.port}
    ctx.details["world"] = details
    fixture = ctx.fixture
    records = [[n, t, list(v) if isinstance(v, tuple) else v] for n, t, v in world.records()]
    records += [
        [f"{seed.SELECTOR}._domainkey.{fixture.domain}", "TXT", public_key_txt(fixture.public_key_b64)],
        [f"_dmarc.{fixture.domain}", "TXT", "v=DMARC1; p=none"],
    ]
    dns, dns_port = start_dns(ctx, records, name="world-dns")
    worker_env = delivery_worker_env(
        dns_port=dns_port,
        smtp_port=world.port,
        PUFFERPOST_TLS_CA_FILE=str(world.ca.ca_file),
        PUFFERPOST_SHAPING_FILE=shaping_file(ctx, world),
    )

    # The workers as compose.yaml runs them: fresh mail on the delivery queue and retries (the
    # paced backlog's booked slots) on delivery_retry, each on a prefork worker of its own taking
    # one task at a time per process (more processes than cores: most of a delivery waits for the
    # remote server), everything else on a third worker.
    prefork = ("--pool", "prefork", "--prefetch-multiplier", "1", "--concurrency")
    workers = [
        ctx.children.start(
            "world-worker-delivery",
            celery_worker_argv("world-delivery", *prefork, "4", queues="delivery"),
            **worker_env,
        ),
        ctx.children.start(
            "world-worker-retry",
            celery_worker_argv("world-retry", *prefork, "2", queues="delivery_retry"),
            **worker_env,
        ),
        ctx.children.start(
            "world-worker-default",
            celery_worker_argv("world-default", "--pool", "solo", queues="default,webhooks,domains"),
            **worker_env,
        ),
    ]
    for worker in workers:
        worker.wait_for_log("ready.", timeout=240)
    port = ctx.web()
    try:
        # Warm the web workers (their first request imports and connects; minutes on a busy machine).
        for n in range(8):
            run_load(port, [_one_batch(ctx, port, [f"warm{n}@tail0.test"], 50_000_000 + n)], concurrency=1)
        # The long tail alone: offered at the rate it arrives in the mix, with nothing else.
        tail_rate = ACCEPT_RATE * TAIL_SHARE
        rng = random.Random(11)
        tail_only = [
            f"solo{i}@tail{rng.randrange(TAIL_DOMAINS)}.test" for i in range(int(tail_rate * TAIL_ALONE_SECONDS))
        ]
        since = timezone.now()
        _, details["tail_alone_failed_requests"] = _accept(ctx, port, tail_only, 60_000_000, rate=tail_rate)
        alone_ids = _recent_ids(since)
        alone = _observe(alone_ids, hard_limit=60.0, stall=15.0)
        details["tail_alone"] = alone
        world.log.clear()

        # The weighted mix: the Google-like share is paced (and would be throttled) for a minute.
        recipients = world.recipients(count)
        ceiling = allowed_rate(world, recipients)
        since = timezone.now()
        accepted_in, details["mix_failed_requests"] = _accept(ctx, port, recipients, 70_000_000)
        ids = _recent_ids(since)
        mix = _observe(ids, hard_limit=max(120.0, 3 * count / ceiling), stall=30.0)
        mix["accepted_in_s"] = round(accepted_in, 1)
        details["mix"] = mix
        tail_ids = list(Message.objects.filter(pk__in=ids, to__contains="@tail").values_list("id", flat=True))
        beside = _latencies(tail_ids)
        details["tail_beside_throttled"] = {
            "messages": len(tail_ids),
            "p50_s": percentile(beside, 50),
            "p99_s": percentile(beside, 99),
        }
        found = violations(world)
        details["violations"] = found
        details["ceiling_msg_per_s"] = round(ceiling, 1)
    finally:
        for child in [*workers, dns]:
            ctx.children.stop(child)
        world.stop()

    rate = mix["msg_per_s"] or 0.0
    ratio = rate / ceiling if ceiling else None
    ctx.row("world", "ceiling: rate the world's limits allow for the mix", round(ceiling, 1), "msg/s")
    ctx.row(
        "world",
        f"msg/s ({mix['delivered_events']:,}/{len(ids):,} delivered)",
        rate,
        "msg/s",
        round(ceiling, 1),
        None if ratio is None else round(ratio, 2),
        "≥ 0.9× allowed",
        ratio is not None and ratio >= 0.9,
    )
    ctx.row("world", "limit violations seen by the world", found["total"], "", goal="0", met=found["total"] == 0)
    a50, a99 = alone["p50_s"], alone["p99_s"]
    b50, b99 = details["tail_beside_throttled"]["p50_s"], details["tail_beside_throttled"]["p99_s"]
    ctx.row("world", "long tail p50 alone / beside a throttled big destination", f"{_f(a50)} / {_f(b50)}", "s")
    within = None not in (a50, a99, b50, b99) and b50 <= 1.5 * max(a50, 0.05) and b99 <= 1.5 * max(a99, 0.05)
    ctx.row("world", "long tail p99 alone / beside", f"{_f(a99)} / {_f(b99)}", "s", goal="within 1.5×", met=within)


def _f(value) -> str:
    return "—" if value is None else f"{value:.2f}"
