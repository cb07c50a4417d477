"""Delivery: accepted → delivered by the Celery workers (by default as compose.yaml's worker-delivery
runs: one prefork worker, 4 processes, prefetch 1) to a loopback aiosmtpd MX, against a
bare loop on 2 processes doing the same render + DKIM sign (RSA-2048) + SMTP send over one reused
connection each (the limit).

The MX and the DNS server (MX record, the MX host's address, the DKIM and DMARC TXT records) run in
their own processes. Messages are accepted through the API (POST /v1/messages for the light-load
latency, POST /v1/messages/batch for throughput), exactly as customers send them; the harness only
watches the database: a message counts once its `delivered` event exists, and accept → delivered
is that event's occurred_at minus the message's created_at. Every wait is bounded: when nothing
moves for STALL_SECONDS, or the hard limit passes, the workload reports what it saw
("0 of N delivered within the limit") instead of hanging.
"""

import json
import multiprocessing
import time
from pathlib import Path

from bench import seed
from bench.common import celery_worker_argv, delivery_worker_env, free_port, percentile, python_argv, wait_for_port
from bench.loadgen import http_request, run_load

CEILING_PROCESSES = 2
WORKERS = 2
STALL_SECONDS = 20.0
LIGHT_COUNT = 50
LIGHT_RATE = 10.0  # requests a second during the light-load phase
MX_HOST = "mx.example.test"


def zone(fixture) -> list:
    from messaging.delivery.dkim import public_key_txt

    return [
        [seed.RECIPIENT_DOMAIN, "MX", [10, MX_HOST]],
        [MX_HOST, "A", "127.0.0.1"],
        [f"{seed.SELECTOR}._domainkey.{fixture.domain}", "TXT", public_key_txt(fixture.public_key_b64)],
        [f"_dmarc.{fixture.domain}", "TXT", "v=DMARC1; p=none"],
    ]


def start_dns(ctx, records: list, name: str = "dns"):
    """The loopback DNS server in its own process; returns (child, port)."""
    path = ctx.log_dir / f"{name}-zone.json"
    path.write_text(json.dumps(records))
    child = ctx.children.start(name, python_argv("-m", "bench.dns_proc", str(path)))
    child.wait_for_log("DNS READY", timeout=60)
    return child, int(child.tail(10_000).split("DNS READY ", 1)[1].split()[0])


def start_mx(ctx):
    port = free_port()
    count_file = ctx.log_dir / "mx-count"
    child = ctx.children.start("mx", python_argv("-m", "bench.mx_proc", str(port), str(count_file)))
    child.wait_for_log("MX READY", timeout=30)
    wait_for_port(port, timeout=10, process=child)
    return child, port, count_file


def mx_count(count_file: Path) -> int:
    try:
        return int(count_file.read_text() or 0)
    except (OSError, ValueError):
        return 0


# --- the limit: a bare render + sign + send loop -------------------------------------------------


def render_sign_send(smtp, version, body: dict, *, domain: str, private_key_pem: str) -> int:
    """The limit's unit of work: render + build + DKIM-sign + send over an open connection."""
    from messaging.delivery import dkim
    from messaging.delivery.mime import build_message
    from pufferpost.ids import new_id
    from templates_app.rendering import render_version

    rendered = render_version(version, data=body["data"], locale=body["locale"], timezone=body["timezone"])
    message_id = new_id("msg")
    out = build_message(
        message_id=message_id,
        from_email=body["from"],
        from_name="Bench Shop",
        to=body["to"],
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        unsubscribe_url=f"http://127.0.0.1:8000/v1/unsubscribe/{message_id}",
    )
    signed = dkim.sign(out.data, domain=domain, selector=seed.SELECTOR, private_key_pem=private_key_pem)
    smtp.sendmail(out.mail_from, out.recipients, signed)
    return len(signed)


def _ceiling_child(index: int, count: int, mx_port: int, fixture_dict: dict, barrier, results) -> None:
    import smtplib

    import django

    django.setup()
    from templates_app.models import TemplateVersion

    version = TemplateVersion.objects.get(pk=fixture_dict["template_version_pk"])
    smtp = smtplib.SMTP("127.0.0.1", mx_port, local_hostname="bench.localhost", timeout=30)
    smtp.ehlo()
    # One warm-up message (template compile, key parse, connection).
    bodies = [seed.send_body_from_dict(fixture_dict, index * 10_000_000 + i) for i in range(count + 1)]
    keys = {"domain": fixture_dict["domain"], "private_key_pem": fixture_dict["private_key_pem"]}

    size = render_sign_send(smtp, version, bodies[0], **keys)
    barrier.wait(timeout=60)
    started = time.perf_counter()
    for body in bodies[1:]:
        render_sign_send(smtp, version, body, **keys)
    elapsed = time.perf_counter() - started
    smtp.quit()
    results.put({"index": index, "count": count, "seconds": elapsed, "message_bytes": size})


def run_ceiling(ctx, mx_port: int, count_file: Path) -> dict:
    fixture_dict = dict(ctx.fixture.__dict__)
    per_process = max(1, ctx.args.ceiling_count // CEILING_PROCESSES)
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(CEILING_PROCESSES)
    results = spawn.Queue()
    before = mx_count(count_file)
    processes = [
        spawn.Process(target=_ceiling_child, args=(i, per_process, mx_port, fixture_dict, barrier, results))
        for i in range(CEILING_PROCESSES)
    ]
    try:
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=300) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    time.sleep(0.5)
    total = sum(o["count"] for o in outcomes)
    slowest = max(o["seconds"] for o in outcomes)
    return {
        "processes": CEILING_PROCESSES,
        "messages": total,
        "seconds": round(slowest, 3),
        "msg_per_s": round(total / slowest, 1),
        "message_bytes": outcomes[0]["message_bytes"],
        "mx_received": mx_count(count_file) - before,
    }


# --- the pipeline --------------------------------------------------------------------------------


def _observe(ids: list[str], *, hard_limit: float, stall: float = STALL_SECONDS, since_claim: bool = False) -> dict:
    """Poll the database until every message in `ids` is delivered (or terminal), nothing moves for
    `stall` seconds, or `hard_limit` seconds pass. Returns latencies of the delivered ones; the rate
    runs from the first accept (with `since_claim`, the first claim) to the last delivery."""
    from django.db import connection
    from django.db.models import Min

    from messaging.models import TERMINAL_STATUSES, EventType, MessageEvent

    terminal = [str(s) for s in TERMINAL_STATUSES]
    started = time.monotonic()
    last_progress, last_done = started, -1
    delivered = 0
    with connection.cursor() as cursor:
        for _ in range(int(hard_limit / 0.5) + 1):
            cursor.execute(
                "SELECT count(*) FILTER (WHERE status = ANY(%s)), count(*) FILTER (WHERE status = 'delivered') "
                "FROM messaging_message WHERE id = ANY(%s)",
                [terminal, ids],
            )
            done, delivered = cursor.fetchone()
            now = time.monotonic()
            if done != last_done:
                last_done, last_progress = done, now
            if done >= len(ids) or now - last_progress > stall or now - started > hard_limit:
                break
            time.sleep(0.5)
        cursor.execute(
            """
            SELECT m.created_at, e.occurred_at FROM messaging_message m
            JOIN LATERAL (SELECT min(occurred_at) AS occurred_at FROM messaging_messageevent
                          WHERE message_id = m.id AND type = 'delivered') e ON e.occurred_at IS NOT NULL
            WHERE m.id = ANY(%s)
            """,
            [ids],
        )
        pairs = cursor.fetchall()
        cursor.execute("SELECT status, count(*) FROM messaging_message WHERE id = ANY(%s) GROUP BY status", [ids])
        statuses = dict(cursor.fetchall())
    first_claim = MessageEvent.objects.filter(message_id__in=ids, type=EventType.QUEUED).aggregate(
        first=Min("occurred_at")
    )["first"]
    latencies = [(d - c).total_seconds() for c, d in pairs]
    result = {
        "messages": len(ids),
        "delivered_events": len(pairs),
        "statuses": statuses,
        "waited_s": round(time.monotonic() - started, 1),
        "p50_s": _r(percentile(latencies, 50)),
        "p99_s": _r(percentile(latencies, 99)),
    }
    if pairs:
        first = first_claim if since_claim and first_claim is not None else min(c for c, _ in pairs)
        last_delivery = max(d for _, d in pairs)
        span = (last_delivery - first).total_seconds()
        result["msg_per_s"] = round(len(pairs) / span, 1) if span > 0 else None
    else:
        result["msg_per_s"] = 0.0
    return result


def _r(value):
    return None if value is None else round(value, 3)


def _accept_single(ctx, port: int, count: int, offset: int) -> None:
    """POST /v1/messages, one request at a time, paced at LIGHT_RATE a second."""
    for i in range(count):
        t0 = time.perf_counter()
        request = http_request(
            "POST", "/v1/messages", body=seed.send_body(ctx.fixture, offset + i), headers=ctx.auth(), port=port
        )
        result = run_load(port, [request], concurrency=1, expect=(202,), total_timeout=30)
        if result.ok != 1:
            raise RuntimeError(f"a send was refused: {result.summary()}")
        time.sleep(max(0.0, 1 / LIGHT_RATE - (time.perf_counter() - t0)))


def _start_workers(ctx, worker_env: dict, *, suffix: str = "") -> list:
    """The delivery workers (`--delivery-*`), once each says it is ready."""
    a = ctx.args
    workers = []
    for n in range(a.delivery_workers):
        options = ["--pool", a.delivery_pool]
        if a.delivery_pool != "solo":
            options += ["-c", str(a.delivery_concurrency)]
        if a.delivery_prefetch:
            options += ["--prefetch-multiplier", str(a.delivery_prefetch)]
        argv = celery_worker_argv(f"bench{n}{suffix}", *options)
        workers.append(ctx.children.start(f"worker{n}{suffix}", argv, **worker_env))
    for worker in workers:
        worker.wait_for_log("ready.", timeout=60)
    return workers


def _recent_ids(since) -> list[str]:
    """Messages accepted since `since` (nothing else sends while the delivery workload runs)."""
    from messaging.models import Message

    return list(Message.objects.filter(created_at__gte=since).values_list("id", flat=True))


def run(ctx) -> None:
    from django.utils import timezone

    fixture = ctx.fixture
    dns, dns_port = start_dns(ctx, zone(fixture))
    mx, mx_port, count_file = start_mx(ctx)
    details = {
        "dns_port": dns_port,
        "mx_port": mx_port,
        "workers": {
            "processes": ctx.args.delivery_workers,
            "pool": ctx.args.delivery_pool,
            "concurrency": ctx.args.delivery_concurrency,
            "prefetch_multiplier": ctx.args.delivery_prefetch,
        },
    }
    ctx.details["delivery"] = details

    ceiling = run_ceiling(ctx, mx_port, count_file)
    details["ceiling"] = ceiling

    port = ctx.web()
    worker_env = delivery_worker_env(dns_port=dns_port, smtp_port=mx_port)
    workers = _start_workers(ctx, worker_env)
    mx_before = mx_count(count_file)

    # Light load: one message every 1/LIGHT_RATE s, each its own request.
    since = timezone.now()
    _accept_single(ctx, port, LIGHT_COUNT, 30_000_000)
    light_ids = _recent_ids(since)
    light = _observe(light_ids, hard_limit=30.0, stall=10.0)
    details["light"] = light

    # Throughput: N messages accepted in 100-item batches as fast as the API takes them.
    n = ctx.args.delivery_count
    batches = [ctx.batch_request(40_000_000 + b * 100, min(100, n - b * 100)) for b in range((n + 99) // 100)]
    since = timezone.now()
    accept = run_load(port, batches, concurrency=2, expect=(200,), total_timeout=300).summary()
    bulk_ids = _recent_ids(since)
    hard_limit = 30.0 if light["delivered_events"] == 0 else max(60.0, n / 50)
    bulk = _observe(bulk_ids, hard_limit=min(hard_limit, 240.0))
    bulk["accept"] = accept
    bulk["mx_received_total"] = mx_count(count_file) - mx_before
    details["throughput"] = bulk

    # Drain: as many messages accepted while no worker runs, then delivered. Delivery alone, the
    # accept not sharing the machine (the loop accepts nothing either); its rate runs from the
    # first claim to the last delivery.
    for worker in workers:
        ctx.children.stop(worker)
    since = timezone.now()
    drain_accept = run_load(
        port,
        [ctx.batch_request(60_000_000 + b * 100, min(100, n - b * 100)) for b in range((n + 99) // 100)],
        concurrency=2,
        expect=(200,),
        total_timeout=300,
    ).summary()
    drain_ids = _recent_ids(since)
    workers = _start_workers(ctx, worker_env, suffix="-drain")
    drain = _observe(drain_ids, hard_limit=min(hard_limit, 240.0), since_claim=True)
    drain["accept"] = drain_accept
    details["drain"] = drain

    ratio = bulk["msg_per_s"] / ceiling["msg_per_s"] if ceiling["msg_per_s"] else None
    ctx.row("delivery", f"ceiling: render+sign+send ×{CEILING_PROCESSES} procs", ceiling["msg_per_s"], "msg/s")
    ctx.row(
        "delivery",
        f"msg/s ({bulk['delivered_events']:,}/{len(bulk_ids):,} delivered)",
        bulk["msg_per_s"],
        "msg/s",
        ceiling["msg_per_s"],
        round(ratio, 2) if ratio is not None else None,
        "≥ 0.8× limit (#9)",
        ratio is not None and ratio >= 0.8,
    )
    ctx.row("delivery", "msg/s sustained", bulk["msg_per_s"], "msg/s", goal="≥ 300 msg/s", met=bulk["msg_per_s"] >= 300)
    drain_ratio = drain["msg_per_s"] / ceiling["msg_per_s"] if ceiling["msg_per_s"] and drain["msg_per_s"] else None
    ctx.row(
        "delivery",
        f"drain msg/s (accepted first; {drain['delivered_events']:,}/{len(drain_ids):,} delivered)",
        drain["msg_per_s"],
        "msg/s",
        ceiling["msg_per_s"],
        round(drain_ratio, 2) if drain_ratio is not None else None,
    )
    ctx.row("delivery", "accept→delivered p50 (bulk)", bulk["p50_s"], "s")
    ctx.row("delivery", "accept→delivered p99 (bulk)", bulk["p99_s"], "s")
    ctx.row(
        "delivery",
        f"accept→delivered p50 (light, {LIGHT_RATE:.0f}/s; {light['delivered_events']}/{len(light_ids)} delivered)",
        light["p50_s"],
        "s",
        goal="≤ 1 s",
        met=light["p50_s"] is not None and light["p50_s"] <= 1.0 and light["delivered_events"] == len(light_ids),
    )
    ctx.row("delivery", "accept→delivered p99 (light)", light["p99_s"], "s")
    for phase, observed, ids in (("", bulk, bulk_ids), ("drain: ", drain, drain_ids)):
        if observed["delivered_events"] < len(ids):
            ctx.row(
                "delivery",
                f"{phase}NOT all delivered within the limit",
                f"{observed['delivered_events']}/{len(ids)} in {observed['waited_s']} s",
                met=False,
            )
    for child in [*workers, mx, dns]:
        ctx.children.stop(child)
