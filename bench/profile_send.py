"""Profile POST /v1/messages in-process: N requests through Django's WSGI handler (test Client),
against a real database (`pufferpost_bench_profile`, dropped and re-created) and the bench's Redis
prefix. Prints CPU per request for the send endpoint and the bench's bare ceiling, in this process
and in this process's PostgreSQL backend (the server's share of the work, which the bench's two
cores pay too), then the top of a cProfile of the send requests.

    .venv/bin/python -m bench.profile_send [--requests 2000] [--sort cumulative] [--top 60]
    .venv/bin/python -m bench.profile_send --no-profile          # timings only
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATABASE = "pufferpost_bench_profile"
PREFIX = "pp-bench-profile:"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="profile CPU time (process_time), not wall time")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--dump", help="write the pstats file here")
    args = parser.parse_args(argv)

    from bench.common import database_url, isolated_env

    db_url = database_url(DATABASE)
    os.environ.update(isolated_env(database_url=db_url, redis_prefix=PREFIX, var_dir="/tmp", secret_prefix="profile"))
    sys.path.insert(0, str(REPO))
    import django

    from bench import seed

    seed.reset_database(db_url, DATABASE)
    django.setup()
    from django.test import Client

    seed.migrate()
    seed.clean_redis(PREFIX)
    try:
        fixture = seed.seed()
        client = Client(HTTP_AUTHORIZATION=f"Bearer {fixture.api_key}", HTTP_HOST="127.0.0.1")
        bodies = [json.dumps(seed.send_body(fixture, i)) for i in range(args.requests + 200)]
        ceiling_body = bodies[0]

        def send(i):
            response = client.post("/v1/messages", bodies[i], content_type="application/json")
            assert response.status_code == 202, response.content

        def ceiling(i):
            response = client.post("/bench/ceiling", ceiling_body, content_type="application/json")
            assert response.status_code in (200, 201, 202), response.content

        for i in range(200):  # warm-up: imports, connections, compiled caches
            send(args.requests + i)
            ceiling(i)

        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = Path(f"/proc/{cursor.fetchone()[0]}/stat")
        ticks = os.sysconf("SC_CLK_TCK")

        def backend_cpu() -> float:
            """CPU seconds of this connection's PostgreSQL backend (utime + stime), if it runs here."""
            try:
                fields = backend.read_text().rsplit(")", 1)[1].split()
            except OSError:
                return float("nan")
            return (int(fields[11]) + int(fields[12])) / ticks

        def measure(fn, n):
            cpu, wall, server = time.process_time(), time.perf_counter(), backend_cpu()
            for i in range(n):
                fn(i)
            per = 1000 / n
            return (
                (time.process_time() - cpu) * per,
                (time.perf_counter() - wall) * per,
                (backend_cpu() - server) * per,
            )

        n = min(args.requests, 500)
        results = {}
        for _round in range(3):  # interleaved, medians
            for name, fn in (("ceiling", ceiling), ("send", send)):
                results.setdefault(name, []).append(measure(fn, n))
        for name, values in results.items():
            cpu = sorted(v[0] for v in values)[1]
            wall = sorted(v[1] for v in values)[1]
            server = sorted(v[2] for v in values)[1]
            print(
                f"{name:8s} CPU {cpu:.2f} ms/request, PostgreSQL backend {server:.2f} ms/request, "
                f"wall {wall:.2f} ms/request (median of 3 × {n})"
            )
        if not args.no_profile:
            profiler = cProfile.Profile(time.process_time if args.cpu else time.perf_counter)
            profiler.enable()
            for i in range(args.requests):
                send(i)
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(args.sort).print_stats(args.top)
            if args.dump:
                stats.dump_stats(args.dump)
            print(out.getvalue())
    finally:
        seed.clean_redis(PREFIX)
        if not args.keep_database:
            seed.drop_database(db_url, DATABASE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
