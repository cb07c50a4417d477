"""Profile `messaging.delivery.services.deliver_messages` in-process: batches of accepted messages
delivered to a loopback aiosmtpd MX (own process) found through a loopback DNS server (own
process), against a real database (`pufferpost_bench_profile`, dropped and re-created).

Prints msg/s (wall and CPU of this process) per batch size, then the top of a cProfile.

    .venv/bin/python -m bench.profile_delivery [--messages 1000] [--batch 200] [--cpu] [--top 60]
    .venv/bin/python -m bench.profile_delivery --no-profile --batch 1     # one message per task
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATABASE = "pufferpost_bench_profile_delivery"  # its own: profile_send may run beside it
PREFIX = "pp-bench-profile-delivery:"


def _start(argv: list[str], ready: str, env: dict) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen(
        [sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if ready in line:
            return child, line
        if not line and child.poll() is not None:
            break
    child.kill()
    raise RuntimeError(f"{argv} did not start")


def _is_postgres(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--cpu", action="store_true", help="profile CPU time (process_time), not wall time")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--dump", help="write the pstats file here")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args(argv)

    from bench.common import database_url, free_port, isolated_env

    db_url = database_url(DATABASE)
    env = isolated_env(database_url=db_url, redis_prefix=PREFIX, var_dir="/tmp", secret_prefix="profile")
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    from bench import seed

    seed.reset_database(db_url, DATABASE)
    django.setup()
    seed.migrate()
    seed.clean_redis(PREFIX)
    children = []
    try:
        fixture = seed.seed()
        from bench.workloads.delivery import zone

        zone_file = Path(tempfile.mkdtemp(prefix="pp-profile-")) / "zone.json"
        zone_file.write_text(json.dumps(zone(fixture)))
        dns, line = _start(["-m", "bench.dns_proc", str(zone_file)], "DNS READY", env)
        children.append(dns)
        dns_port = int(line.split("DNS READY ", 1)[1].split()[0])
        mx_port = free_port()
        mx, _ = _start(["-m", "bench.mx_proc", str(mx_port), str(zone_file.with_name("count"))], "MX READY", env)
        children.append(mx)

        from django.conf import settings

        settings.PUFFERPOST_DNS_NAMESERVERS = [("127.0.0.1", dns_port)]
        settings.PUFFERPOST_DNS_TIMEOUT = 2.0
        settings.PUFFERPOST_SMTP_PORT = mx_port
        settings.PUFFERPOST_SMTP_ALLOW_PRIVATE = True  # the MX is on loopback
        settings.PUFFERPOST_SMTP_TIMEOUT = 10.0

        from unittest import mock

        from django.test import Client

        from messaging import services as send_services
        from messaging.delivery.services import deliver_messages
        from messaging.models import Message, MessageStatus

        client = Client(HTTP_AUTHORIZATION=f"Bearer {fixture.api_key}", HTTP_HOST="127.0.0.1")

        def accept(n: int, offset: int) -> list[str]:
            """n accepted messages through POST /v1/messages/batch (the enqueue is left out)."""
            ids = []
            with mock.patch.object(send_services, "delivery_enqueue"):
                for start in range(0, n, 100):
                    body = {
                        "messages": [seed.send_body(fixture, offset + start + i) for i in range(min(100, n - start))]
                    }
                    response = client.post("/v1/messages/batch", json.dumps(body), content_type="application/json")
                    assert response.status_code == 200, response.content
                    ids += [r["id"] for r in response.json()["data"] if r["status"] == "accepted"]
            return ids

        def children_cpu() -> float:
            """CPU seconds used so far by the MX and the PostgreSQL backends (the DNS server is idle)."""
            total = 0.0
            pids = [mx.pid] + [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_postgres(p)]
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                except (OSError, IndexError, ValueError):
                    pass
            return total

        def run(ids: list[str], batch: int) -> tuple[float, float]:
            cpu, wall, others = time.process_time(), time.perf_counter(), children_cpu()
            for start in range(0, len(ids), batch):
                deliver_messages(message_ids=ids[start : start + batch])
            run.others = children_cpu() - others
            return time.process_time() - cpu, time.perf_counter() - wall

        def check(ids):
            delivered = Message.objects.filter(pk__in=ids, status=MessageStatus.DELIVERED).count()
            assert delivered == len(ids), f"{delivered}/{len(ids)} delivered"

        def ceiling(n: int) -> tuple[float, float, float]:
            """The bench's limit in this process: render + build + DKIM-sign + send, one reused connection."""
            import smtplib

            from bench.workloads.delivery import render_sign_send
            from templates_app.models import TemplateVersion

            version = TemplateVersion.objects.get(pk=fixture.template_version_pk)
            smtp = smtplib.SMTP("127.0.0.1", mx_port, local_hostname="bench.localhost", timeout=30)
            smtp.ehlo()
            bodies = [seed.send_body(fixture, 20_000_000 + i) for i in range(n)]
            cpu, wall, others = time.process_time(), time.perf_counter(), children_cpu()
            for body in bodies:
                render_sign_send(smtp, version, body, domain=fixture.domain, private_key_pem=fixture.private_key_pem)
            result = time.process_time() - cpu, time.perf_counter() - wall, children_cpu() - others
            smtp.quit()
            return result

        warm = accept(50, 10_000_000)
        run(warm, 50)
        check(warm)
        ids = accept(args.messages, 0)
        if args.no_profile:
            cpu, wall = run(ids, args.batch)
        else:
            profiler = cProfile.Profile(time.process_time if args.cpu else time.perf_counter)
            profiler.enable()
            cpu, wall = run(ids, args.batch)
            profiler.disable()
        check(ids)
        n = len(ids)
        print(
            f"{n} messages in batches of {args.batch}: {n / wall:.0f} msg/s wall, "
            f"{cpu / n * 1000:.2f} ms CPU/message in this process{'' if args.no_profile else ' (profiled)'}, "
            f"{run.others / n * 1000:.2f} ms in PostgreSQL + the MX (all backends: noisy when others use the database)"
        )
        c_cpu, c_wall, c_others = ceiling(n)
        print(
            f"ceiling (render+build+sign+send, 1 process): {n / c_wall:.0f} msg/s wall, "
            f"{c_cpu / n * 1000:.2f} ms CPU/message in this process, {c_others / n * 1000:.2f} ms in PostgreSQL + the MX"
        )
        if not args.no_profile:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())
            if args.dump:
                stats.dump_stats(args.dump)
    finally:
        for child in children:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        seed.clean_redis(PREFIX)
        if not args.keep_database:
            seed.drop_database(db_url, DATABASE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
