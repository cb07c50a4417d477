"""Send path: POST /v1/messages vs the bare ceiling endpoint, and POST /v1/messages/batch."""

from bench import seed
from bench.loadgen import http_request, merge, run_load

CONCURRENCY = 16
ROUNDS = 5
BATCH_SIZE = 100
BATCH_CONCURRENCY = 4


def _single_requests(ctx, path: str, start: int, count: int, *, auth: bool) -> list[bytes]:
    headers = ctx.auth() if auth else {}
    return [
        http_request("POST", path, body=seed.send_body(ctx.fixture, i), headers=headers, port=ctx.web_port)
        for i in range(start, start + count)
    ]


def run(ctx) -> None:
    port = ctx.web()
    count, warmup = ctx.args.send_count, ctx.args.warmup
    # Warm every gunicorn worker on both routes (imports, connections, compiled caches).
    for path, auth in (("/bench/ceiling", False), ("/v1/messages", True)):
        run_load(port, _single_requests(ctx, path, 0, warmup, auth=auth), concurrency=CONCURRENCY, expect=(202,))
    # Interleaved rounds (ceiling, app, app, ceiling, …): whatever else runs on the machine hits both alike.
    rounds = max(1, min(ROUNDS, count // 100))
    per_round = count // rounds
    ceilings, apps = [], []
    for r in range(rounds):
        start = 10_000_000 + r * per_round
        order = [("/bench/ceiling", False, ceilings), ("/v1/messages", True, apps)]
        for path, auth, sink in order if r % 2 == 0 else reversed(order):
            requests = _single_requests(ctx, path, start, per_round, auth=auth)
            sink.append(run_load(port, requests, concurrency=CONCURRENCY, expect=(202,)))
    c, a = merge(ceilings).summary(), merge(apps).summary()
    c["rounds"] = a["rounds"] = rounds
    ctx.details["send"] = {"ceiling": c, "app": a, "gunicorn": _gunicorn(ctx)}
    ratio = a["req_per_s"] / c["req_per_s"] if c["req_per_s"] else None
    ctx.row(
        "send",
        "req/s (c=16)",
        a["req_per_s"],
        "req/s",
        c["req_per_s"],
        _r(ratio),
        "≥ 0.7× ceiling (#9)",
        _ge(ratio, 0.7),
    )
    ctx.row("send", "p50", a["p50_ms"], "ms", c["p50_ms"], _r(_div(a["p50_ms"], c["p50_ms"])))
    ctx.row(
        "send",
        "p99",
        a["p99_ms"],
        "ms",
        c["p99_ms"],
        _r(_div(a["p99_ms"], c["p99_ms"])),
        "≤ 50 ms",
        _le(a["p99_ms"], 50),
    )
    ctx.row("send", "errors", a["errors"], "", c["errors"], None, "0", a["errors"] == 0 and c["errors"] == 0)
    ctx.row("send", "client CPU (of 1 core)", a["client_cpu_share_of_one_core"], "", c["client_cpu_share_of_one_core"])
    _purge_queues(ctx)

    batches = ctx.args.batch_count
    single_rps = a["req_per_s"]
    warm = [_batch_request(ctx, b) for b in range(2)]
    run_load(port, warm, concurrency=2, expect=(200,))
    batch = run_load(
        port, [_batch_request(ctx, 1000 + b) for b in range(batches)], concurrency=BATCH_CONCURRENCY, expect=(200,)
    )
    b = batch.summary()
    items_per_s = b["req_per_s"] * BATCH_SIZE
    b["items_per_s"] = round(items_per_s, 1)
    b["per_item_ms_of_wall"] = round(1000 / items_per_s, 3) if items_per_s else None
    b["single_per_request_ms_of_wall"] = round(1000 / single_rps, 3) if single_rps else None
    ctx.details["batch"] = b
    ctx.row("batch", "p50 (100 items, c=4)", b["p50_ms"], "ms")
    ctx.row("batch", "p99 (100 items, c=4)", b["p99_ms"], "ms")
    ctx.row(
        "batch",
        "items/s vs single sends/s",
        b["items_per_s"],
        "items/s",
        single_rps,
        _r(_div(b["items_per_s"], single_rps)),
        "cheaper per item",
        _ge(_div(b["items_per_s"], single_rps), 1.0),
    )
    ctx.row("batch", "errors", b["errors"], "", None, None, "0", b["errors"] == 0)
    _purge_queues(ctx)


def _batch_request(ctx, b: int) -> bytes:
    return ctx.batch_request(20_000_000 + b * BATCH_SIZE, BATCH_SIZE)


def _purge_queues(ctx) -> None:
    """The accepted messages' delivery tasks (and the ceiling's) wait in Redis; no worker runs now."""
    seed.clean_redis(ctx.env["PUFFERPOST_REDIS_KEY_PREFIX"])


def _gunicorn(ctx) -> dict:
    a = ctx.args
    return {"workers": a.gunicorn_workers, "class": a.gunicorn_class, "threads": a.gunicorn_threads}


def _div(a, b):
    return a / b if a is not None and b else None


def _r(value, digits: int = 2):
    return None if value is None else round(value, digits)


def _ge(value, goal) -> bool | None:
    return None if value is None else value >= goal


def _le(value, goal) -> bool | None:
    return None if value is None else value <= goal
