"""Real processes for end-to-end tests: Celery workers and beat against the test database.

The child processes get the test database's name, this session's Redis key prefix (so they only
see this run's queues), the loopback DNS server and the signing key, through the environment,
exactly as a deployment configures them.
"""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.helpers import wait_for

REPO = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] or "postgres"
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**extra) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pufferpost.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PUFFERPOST_REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "PUFFERPOST_DNS_NAMESERVERS": ",".join(f"{h}:{p}" for h, p in settings.PUFFERPOST_DNS_NAMESERVERS),
        "PUFFERPOST_DNS_TIMEOUT": str(settings.PUFFERPOST_DNS_TIMEOUT),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PUFFERPOST_INBOUND_MX_HOST": settings.PUFFERPOST_INBOUND_MX_HOST,
        "PUFFERPOST_SPF_ADDRESSES": ",".join(settings.PUFFERPOST_SPF_ADDRESSES),
        "PUFFERPOST_SPF_INCLUDE": settings.PUFFERPOST_SPF_INCLUDE,
        "PUFFERPOST_RETURN_PATH_DOMAIN": settings.PUFFERPOST_RETURN_PATH_DOMAIN,
        # Each test's fresh shaping state is not "lost state": no conservative start (see shaping).
        "PUFFERPOST_SHAPING_RECOVERY": str(settings.PUFFERPOST_SHAPING_RECOVERY),
        "PUFFERPOST_TLS_CA_FILE": settings.PUFFERPOST_TLS_CA_FILE,
        "PYTHONUNBUFFERED": "1",
    }
    env.setdefault("PUFFERPOST_SMTP_ALLOW_PRIVATE", "true")  # every MX of the suite is on loopback
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Process:
    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> None:
        def logged():
            if needle in self.log():
                return True
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")
            return False

        wait_for(logged, what=f"{self.name} to log {needle!r}", timeout=timeout, processes=[self])

    def kill(self, sig=signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children too)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class Processes:
    """Starts workers and beat for one test and stops every one of them afterwards."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[Process] = []

    def worker(self, name: str = "worker", *, pool: str = "solo", concurrency: int = 1, queues=None, **env) -> Process:
        queues = queues or [q.name for q in settings.CELERY_TASK_QUEUES]
        argv = [CELERY, "-A", "pufferpost", "worker", "--pool", pool, "--concurrency", str(concurrency)]
        argv += ["-Q", ",".join(queues), "-n", f"{name}@%h", "--without-mingle", "--without-gossip", "-l", "INFO"]
        process = self._start(name, argv, env)
        process.wait_for_log("ready.")
        return process

    def beat(self, name: str = "beat", **env) -> Process:
        argv = [CELERY, "-A", "pufferpost", "beat", "-l", "INFO", "-s", str(self.log_dir / "celerybeat-schedule")]
        process = self._start(name, argv, env)
        process.wait_for_log("beat: Starting")
        return process

    def web(self, name: str = "web", *, workers: int = 1, **env) -> Process:
        """gunicorn serving the project on a free loopback port (`process.url`), as in production."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        argv = [GUNICORN, "pufferpost.wsgi", "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
        process = self._start(name, argv, env)
        process.wait_for_log("Booting worker")
        process.url = f"http://127.0.0.1:{port}"
        return process

    def command(self, name: str, *args: str, **env) -> Process:
        """A `manage.py` command running as its own process (e.g. an SMTP server)."""
        return self._start(name, [sys.executable, "manage.py", *args], env)

    def _start(self, name, argv, env) -> Process:
        process = Process(name, argv, child_env(PUFFERPOST_VAR_DIR=self.log_dir, **env), self.log_dir)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()
