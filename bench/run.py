"""`make bench`: `python -m bench.run [--quick] [--only send,batch,delivery,reads,drift,world,retention]`.

Creates its own database (`pufferpost_bench`, dropped and re-created) and Redis key prefix,
starts gunicorn, Celery workers, a loopback DNS server and a loopback MX as it needs them,
prints a table of every workload beside its ceiling and writes bench/results.json. Only
127.0.0.1 is ever contacted. Every child process is stopped at the end, on errors and on Ctrl-C.
"""

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import REPO, Children, background_cpu, database_url, isolated_env, loopback_only, write_json

BUSY_WARNING = 0.15
WORKLOADS = ("send", "batch", "delivery", "reads", "drift", "world", "retention")
FULL = {
    "send_count": 5000,
    "warmup": 500,
    "batch_count": 100,
    "messages": 1_000_000,
    "read_count": 400,
    "delivery_count": 5000,
    "ceiling_count": 4000,
    "domains": 10_000,
    "world_count": 20_000,
    "retention_messages": 1_000_000,
    "retention_rows": 10_000_000,
}
QUICK = {
    "send_count": 300,
    "warmup": 50,
    "batch_count": 6,
    "messages": 20_000,
    "read_count": 40,
    "delivery_count": 300,
    "ceiling_count": 300,
    "domains": 300,
    "world_count": 2000,
    "retention_messages": 20_000,
    "retention_rows": 200_000,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of a minute or two")
    for name, default in FULL.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"full run: {default}")
    parser.add_argument(
        "--database", default="pufferpost_bench", help="database to (re)create; must start with pufferpost_bench"
    )
    parser.add_argument("--redis-prefix", default="pp-bench:", help="Redis key prefix (must start with pp-bench)")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    # The delivery workers' defaults are compose.yaml's worker-delivery: one prefork worker of 4
    # processes taking one task at a time each.
    parser.add_argument("--delivery-workers", type=int, default=1, help="Celery worker processes (delivery)")
    parser.add_argument("--delivery-pool", default="prefork", choices=("solo", "prefork", "threads"))
    parser.add_argument("--delivery-concurrency", type=int, default=4, help="-c of each delivery worker")
    parser.add_argument(
        "--delivery-prefetch",
        type=int,
        default=1,
        help="--prefetch-multiplier of the delivery workers (0: the settings' value)",
    )
    parser.add_argument("--gunicorn-class", default="sync", choices=("sync", "gthread"))
    parser.add_argument("--gunicorn-threads", type=int, default=4)
    parser.add_argument("--output", default=str(REPO / "bench" / "results.json"))
    parser.add_argument("--keep-database", action="store_true", help="leave the bench database behind")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    args.only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(args.only) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    return args


def bench_env(args, var_dir: Path) -> dict:
    db_url = database_url(args.database)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    loopback_only(redis_url, "REDIS_URL")
    return isolated_env(database_url=db_url, redis_prefix=args.redis_prefix, var_dir=var_dir, REDIS_URL=redis_url)


def machine() -> dict:
    import django
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    try:
        from pufferpost import redis as pp_redis

        redis_version = pp_redis.client().info("server")["redis_version"]
    except Exception:  # informational only
        redis_version = "?"
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": pg,
        "redis": redis_version,
        "platform": platform.platform(),
    }


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows) -> str:
    header = ("workload", "metric", "value", "unit", "ceiling", "ratio", "goal", "met?")
    lines = [header] + [
        (r.workload, r.metric, fmt(r.value), r.unit, fmt(r.ceiling), fmt(r.ratio), r.goal, fmt(r.met)) for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="pufferpost-bench-"))
    env = bench_env(args, log_dir)
    os.environ.update(env)
    sys.path.insert(0, str(REPO))

    import django

    from bench import seed

    seed.reset_database(env["DATABASE_URL"], args.database)
    django.setup()
    from bench.context import Context

    children = Children(log_dir, env)
    ctx = Context(args=args, env=env, children=children, log_dir=log_dir)
    failures = {}
    try:
        seed.clean_redis(args.redis_prefix)
        seed.migrate()
        ctx.fixture = seed.seed()
        from bench.workloads import delivery, drift, reads, retention, send, world

        plan = [
            ("send", send.run if "send" in args.only or "batch" in args.only else None),
            ("delivery", delivery.run if "delivery" in args.only else None),
            ("reads", reads.run if "reads" in args.only else None),
            ("drift", drift.run if "drift" in args.only else None),
            ("world", world.run if "world" in args.only else None),
            ("retention", retention.run if "retention" in args.only else None),
        ]
        for name, fn in plan:
            if fn is None:
                continue
            t0 = time.monotonic()
            busy = background_cpu()
            ctx.details.setdefault("background_cpu_before", {})[name] = busy
            print(f"bench: {name} … (machine {busy:.0%} busy before it starts)", file=sys.stderr, flush=True)
            try:
                fn(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                failures[name] = "".join(traceback.format_exception(exc))
                ctx.row(name, "FAILED", repr(exc)[:120], met=False)
                print(failures[name], file=sys.stderr)
            print(f"bench: {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        if "send" not in args.only:
            ctx.rows = [r for r in ctx.rows if r.workload != "send"]
        if "batch" not in args.only:
            ctx.rows = [r for r in ctx.rows if r.workload != "batch"]
        result = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "options": {k: v for k, v in vars(args).items()},
            "duration_s": round(time.monotonic() - started, 1),
            "rows": [r.as_dict() for r in ctx.rows],
            "details": ctx.details,
            "failures": failures,
            "logs": str(log_dir),
        }
        write_json(Path(args.output), result)
        print(table(ctx.rows))
        for name, busy in ctx.details.get("background_cpu_before", {}).items():
            if busy > BUSY_WARNING:
                print(f"warning: the machine was {busy:.0%} busy before {name} started: its figures are skewed")
        print(f"\n{len(ctx.rows)} rows in {result['duration_s']} s; results in {args.output}; logs in {log_dir}")
    finally:
        children.stop_all()
        try:
            seed.clean_redis(args.redis_prefix)
        except Exception as exc:
            print(f"bench: could not clean Redis: {exc!r}", file=sys.stderr)
        if not args.keep_database:
            try:
                seed.drop_database(env["DATABASE_URL"], args.database)
            except Exception as exc:
                print(f"bench: could not drop {args.database}: {exc!r}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
