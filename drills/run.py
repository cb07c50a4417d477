"""`make drills`: `python -m drills.run [--messages 10000] [--submit-seconds S] [--keep]`.

Starts a private PostgreSQL cluster and a private Redis (free loopback ports, in a temp dir), a
loopback DNS server and MX, gunicorn, 2 Celery workers and beat, all in their own processes;
checks that 50 concurrent same-key sends create one message and that the rate limit holds exactly
across 4 processes; then sends N messages through the API while workers are SIGKILLed (3×), Redis
and PostgreSQL are restarted and the MX is down for 30 s, waits until every message is terminal,
and checks that none is lost and the MX saw every Message-ID exactly once. Prints every count and
PASS/FAIL per check; exits 1 when any check fails. Only 127.0.0.1 is contacted; the shared
PostgreSQL and Redis are never touched. Everything is stopped and removed in a `finally`.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import psycopg

from bench.common import REPO, Children, free_port, isolated_env

DEFAULT_MESSAGES = 10_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m drills.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES, help="messages in the fault drill")
    parser.add_argument(
        "--submit-seconds",
        type=float,
        default=None,
        help="period the sends are paced over, and the faults scheduled in (default: messages/60, at least 90)",
    )
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the MX is down")
    parser.add_argument("--redis-down", type=float, default=5.0, help="seconds Redis stays down in its restart")
    parser.add_argument("--drain-seconds", type=float, default=360.0, help="longest wait for terminal states")
    parser.add_argument("--json", default=None, help="write every count and check to this file")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting of every process, e.g. PUFFERPOST_OUTBOX_SWEEP_AFTER=100000 (a negative control)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data) for inspection")
    args = parser.parse_args(argv)
    if args.submit_seconds is None:
        args.submit_seconds = max(90.0, args.messages / 60)
    if args.submit_seconds * 0.5 < 5:
        parser.error("--submit-seconds too short")
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    return args


def drill_env(*, database_url: str, redis_url: str, var_dir: Path) -> dict:
    """What every child gets: the private servers, and retry/lease/sweep settings short enough that
    recovery happens within the drill (a minute, not hours)."""
    return isolated_env(
        database_url=database_url,
        redis_prefix="pp-drill:",
        var_dir=var_dir,
        settings_module="pufferpost.settings",
        secret_prefix="drill",
        REDIS_URL=redis_url,
        PUFFERPOST_SMTP_TIMEOUT="5",
        PUFFERPOST_DNS_TIMEOUT="2",
        PUFFERPOST_DELIVERY_LEASE="30",
        PUFFERPOST_DELIVERY_RETRY_BASE="8",
        PUFFERPOST_DELIVERY_RETRY_MAX_DELAY="20",
        PUFFERPOST_DELIVERY_RETRY_WINDOW="1800",
        PUFFERPOST_DELIVERY_SWEEP_INTERVAL="5",
        PUFFERPOST_DELIVERY_SWEEP_GRACE="5",
        PUFFERPOST_DELIVERY_COUNTDOWN_MAX="300",
        PUFFERPOST_BROKER_VISIBILITY_TIMEOUT="600",
        PUFFERPOST_OUTBOX_SWEEP_AFTER="15",
    )


def _create_database(pg) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute('CREATE DATABASE "pufferpost_drill"')


def mark(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def report(result: dict) -> str:
    lines = ["", "=" * 100, f"PufferPost fault drill: {result['messages']:,} messages", "=" * 100]
    lines.append("\nStatus of the accepted messages:")
    for status, n in sorted(result["statuses"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {status:<28} {n:>8,}")
    lines.append(f"  {'total':<28} {sum(result['statuses'].values()):>8,}")
    lines.append("\nSubmission:")
    for key, value in result["submission"].items():
        lines.append(f"  {key}: {value}")
    lines.append("\nFaults injected:")
    for at, name, detail in result["timeline"]:
        lines.append(f"  {at}  {name}: {detail}")
    for error in result["fault_errors"]:
        lines.append(f"  FAILED TO INJECT: {error}")
    lines.append("\nRecovery, from the process logs:")
    for key, value in result["evidence"].items():
        lines.append(f"  {key}: {value}")
    lines.append("\nAlso:")
    for key, value in result["info"].items():
        lines.append(f"  {key}: {value}")
    lines.append("\nChecks:")
    for check in result["checks"]:
        lines.append(f"  {mark(check['passed'])}  {check['name']}")
        lines.append(f"        {check['detail']}")
    lines.append(f"\n{'PASS' if result['passed'] else 'FAIL'}: {result['summary']} in {result['duration_s']:.0f} s")
    return "\n".join(lines)


def _terminate(signum, frame):
    raise SystemExit(f"drill: stopped by signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. a test runner's timeout) unwinds through the `finally` that stops everything.
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="pufferpost-drills-"))
    os.chmod(tmp, 0o711)  # the private cluster's owner (postgres) must reach tmp/pg
    log_dir = tmp / "logs"
    log_dir.mkdir()
    os.chmod(log_dir, 0o755)
    children = Children(log_dir, dict(os.environ))
    pg = None
    result = None
    from drills import chaos
    from drills.servers import PrivatePostgres, PrivateRedis

    try:
        chaos.log(f"temp dir {tmp}")
        pg = PrivatePostgres(tmp, log_dir).init()
        pg.start()
        _create_database(pg)
        redis = PrivateRedis(children)
        redis.start()
        chaos.log(f"private PostgreSQL on 127.0.0.1:{pg.port}, private Redis on 127.0.0.1:{redis.port}")
        env = {**drill_env(database_url=pg.url, redis_url=redis.url, var_dir=tmp / "var"), **args.env}
        if args.env:
            chaos.log(f"overrides: {args.env}")
        (tmp / "var").mkdir()
        children.env = env
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        from django.core.management import call_command

        from bench import seed
        from bench.context import Context
        from bench.workloads.delivery import start_dns, zone
        from drills import concurrency
        from pufferpost.models import Workspace

        call_command("migrate", verbosity=0, interactive=False)
        fixture = seed.seed()
        idem_fixture = seed.seed()
        rate_fixture = seed.seed()
        Workspace.objects.filter(pk=rate_fixture.workspace_id).update(rate_limit_per_minute=concurrency.RATE_LIMIT)
        chaos.log("migrated; workspaces, verified domains, senders and templates created")

        gunicorn = SimpleNamespace(gunicorn_workers=4, gunicorn_class="gthread", gunicorn_threads=4)
        ctx = Context(args=gunicorn, env=env, children=children, log_dir=log_dir)
        _, dns_port = start_dns(ctx, zone(fixture))
        mx = chaos.Mx(children, free_port(), tmp / "mx-message-ids.log")
        mx.start()
        children.env.update(
            {"PUFFERPOST_DNS_NAMESERVERS": f"127.0.0.1:{dns_port}", "PUFFERPOST_SMTP_PORT": str(mx.port)}
        )
        port = ctx.web()
        workers = chaos.Workers(children, log_dir, {})
        workers.start_worker()
        workers.start_worker()
        workers.start_beat()
        chaos.log(f"DNS :{dns_port}, MX :{mx.port}, gunicorn :{port}, 2 workers and beat running")

        checks = []
        idem = concurrency.idempotency(
            port, idem_fixture.api_key, seed.send_body(idem_fixture, 1), workspace_id=idem_fixture.workspace_id
        )
        chaos.log(f"{mark(idem.passed)} {idem.detail}")
        rate = concurrency.rate_limit(
            port,
            rate_fixture.api_key,
            lambda i: seed.send_body(rate_fixture, 1_000_000 + i),
            workspace_id=rate_fixture.workspace_id,
        )
        chaos.log(f"{mark(rate.passed)} {rate.detail}")

        faults = chaos.Faults(
            workers=workers, redis=redis, postgres=pg, mx=mx, outage=args.outage, redis_down=args.redis_down
        )
        fault_thread = threading.Thread(target=faults.run, args=(args.submit_seconds,), daemon=True)
        chaos.log(f"sending {args.messages:,} messages over {args.submit_seconds:.0f} s while faults are injected")
        t0 = time.monotonic()
        fault_thread.start()
        submission = chaos.submit(
            port, fixture.api_key, fixture, count=args.messages, seconds=args.submit_seconds, tag=f"drill-{os.getpid()}"
        )
        chaos.log(f"submitted in {time.monotonic() - t0:.0f} s: {len(submission.accepted):,} accepted")
        fault_thread.join(timeout=args.submit_seconds + args.outage + 600)
        chaos.log("faults done; waiting for every message to reach a terminal state")
        counts = chaos.wait_terminal(
            pg.url, list(submission.accepted.values()), deadline=time.monotonic() + args.drain_seconds
        )
        drained_at = time.monotonic()
        verdict = chaos.verify(pg.url, fixture.workspace_id, submission, mx.message_ids(), count=args.messages)
        checks = [{"name": n, "passed": p, "detail": d} for n, p, d in verdict.checks]
        checks.append({"name": "faults injected as scheduled", "passed": not faults.errors, "detail": faults.errors})
        checks += [{"name": c.name, "passed": c.passed, "detail": c.detail, "counts": c.counts} for c in (idem, rate)]
        failed = [c["name"] for c in checks if not c["passed"]]
        result = {
            "messages": args.messages,
            "options": vars(args),
            "statuses": dict(verdict.counts),
            "submission": {
                "accepted": len(submission.accepted),
                "requests": dict(submission.requests),
                "requests sent again (why)": dict(submission.retries),
                "refused items": dict(submission.refused),
                "never acknowledged": len(submission.failed),
                "seconds from first send to all terminal": round(drained_at - t0, 1),
            },
            "timeline": faults.timeline,
            "fault_errors": faults.errors,
            "evidence": chaos.log_evidence(log_dir),
            "info": {
                **verdict.info,
                "MX receptions (whole drill, incl. the concurrency checks)": len(mx.message_ids()),
            },
            "checks": checks,
            "passed": not failed,
            "summary": f"{len(checks) - len(failed)}/{len(checks)} checks passed"
            + (f"; failed: {', '.join(failed)}" if failed else ""),
            "logs": str(log_dir) if args.keep else None,
        }
        del counts
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        traceback.print_exc()
        result = {"passed": False, "error": repr(exc)}
    finally:
        children.stop_all()
        if pg is not None:
            try:
                pg.stop()
            except Exception as exc:
                print(f"drill: could not stop the private PostgreSQL: {exc!r}", file=sys.stderr)
        if args.keep:
            print(f"drill: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["duration_s"] = round(time.monotonic() - started, 1)
    if "checks" in result:
        print(report(result), flush=True)
    else:
        print(f"FAIL: the drill could not run: {result['error']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
