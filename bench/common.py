"""What every workload shares: the bench's environment, child processes, ports and small statistics.

Everything here talks to 127.0.0.1 only; the harness refuses a database or Redis URL elsewhere.
"""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def loopback_only(url: str, what: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise SystemExit(f"{what} must point at 127.0.0.1 (the bench talks to nothing else): {url}")


def database_url(name: str) -> str:
    """BENCH_DATABASE_URL (or DATABASE_URL's server) with the bench's own database name."""
    base = (
        os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x"
    )
    parts = urlsplit(base)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    loopback_only(url, "the database")
    return url


def isolated_env(
    *,
    database_url: str,
    redis_prefix: str,
    var_dir: Path | str,
    settings_module: str = "bench.settings",
    secret_prefix: str = "bench",
    **overrides,
) -> dict:
    """The environment of a process the bench, a profiler or a drill starts: its own database and
    Redis prefix, quiet logs, no relay, no inherited DNS or SMTP port (each run sets its own)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DATABASE_URL": database_url,
        "PUFFERPOST_REDIS_KEY_PREFIX": redis_prefix,
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or f"{secret_prefix}-{os.urandom(24).hex()}",
        "DJANGO_DEBUG": "false",
        "PUFFERPOST_VAR_DIR": str(var_dir),
        "PUFFERPOST_LOG_LEVEL": "WARNING",
        "PUFFERPOST_PUBLIC_URL": "http://127.0.0.1:8000",
        "PUFFERPOST_SMTP_HELO_NAME": f"{secret_prefix}.localhost",
        "PUFFERPOST_SMTP_RELAY": "",
        "PUFFERPOST_SMTP_ALLOW_PRIVATE": "true",  # the MX of every run listens on loopback
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
    }
    env.pop("PUFFERPOST_DNS_NAMESERVERS", None)
    env.pop("PUFFERPOST_SMTP_PORT", None)
    env.update({name: str(value) for name, value in overrides.items()})
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float, process: "Child | None" = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Child:
    """One child process in its own session (so its children are stopped with it), logging to a file."""

    name: str
    argv: list[str]
    env: dict
    log_dir: Path
    popen: subprocess.Popen | None = None
    log_path: Path | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> "Child":
        self.log_path = self.log_dir / f"{self.name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.argv, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_for_log(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.tail(200_000):
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not log {needle!r} within {timeout}s:\n{self.tail()}")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=15)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None


class Children:
    """Every process the bench starts; `stop_all` (run from a finally) stops each one, newest first."""

    def __init__(self, log_dir: Path, env: dict):
        self.log_dir = log_dir
        self.env = env
        self.started: list[Child] = []

    def start(self, name: str, argv: list[str], **extra_env) -> Child:
        env = {**self.env, **{k: str(v) for k, v in extra_env.items()}}
        child = Child(name, argv, env, self.log_dir).start()
        self.started.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        if child in self.started:
            self.started.remove(child)

    def stop_all(self) -> None:
        for child in reversed(self.started):
            try:
                child.stop()
            except Exception as exc:  # keep stopping the others
                print(f"bench: could not stop {child.name}: {exc!r}", file=sys.stderr)
        self.started.clear()


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def celery_worker_argv(name: str, *options: str, queues: str = "") -> list[str]:
    """A Celery worker of the project named `name`, logging at INFO (its "ready." line is an INFO
    record the harness waits for). Without `queues` it consumes every queue of
    CELERY_TASK_QUEUES, as `celery worker` without -Q does."""
    argv = python_argv("-m", "celery", "-A", "pufferpost", "worker", "-n", f"{name}@%h", *options)
    if queues:
        argv += ["-Q", queues]
    return [*argv, "--without-mingle", "--without-gossip", "-l", "INFO"]


def delivery_worker_env(*, dns_port: int, smtp_port: int, **extra) -> dict:
    """The environment of the bench's delivery workers: the run's loopback DNS server and MX."""
    return {
        "PUFFERPOST_DNS_NAMESERVERS": f"127.0.0.1:{dns_port}",
        "PUFFERPOST_DNS_TIMEOUT": "2",
        "PUFFERPOST_SMTP_PORT": smtp_port,
        "PUFFERPOST_SMTP_TIMEOUT": "10",
        # INFO: the worker's "ready." line is an INFO record (WARNING hid it and the wait timed out).
        "PUFFERPOST_LOG_LEVEL": "INFO",
        # A run starts on an empty Redis prefix, which the shaper takes for lost state (fail safe):
        # for PUFFERPOST_SHAPING_RECOVERY seconds every destination gets one connection across all
        # workers. That recovery is not the steady state the workloads measure (it had been most of
        # the delivery workload's window: 1,700 of 2,050 messages were deferred once for it).
        "PUFFERPOST_SHAPING_RECOVERY": "0",
        **extra,
    }


def percentile(values, q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def write_json(path: Path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def background_cpu(seconds: float = 1.0) -> float:
    """Share of the machine's CPUs busy over `seconds` while the bench itself is idle (0..1).

    Anything else running on these two cores (another test suite, a build) skews every number;
    the bench records this before each workload so a polluted run can be recognised.
    """
    total0, idle0 = _cpu_times()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    total = total1 - total0
    return round(1 - (idle1 - idle0) / total, 3) if total else 0.0
