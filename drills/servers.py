"""The drill's own PostgreSQL cluster and Redis server, on free loopback ports, in the drill's temp dir.

The drill restarts these (never the shared 127.0.0.1:5432 / :6379 that other runs use). Both are
started as children and stopped in the drill's `finally`; every wait has a deadline.
"""

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import LOOPBACK, Child, Children, free_port, wait_for_port

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin")


def _pg_tool(name: str) -> str:
    for directory in PG_BIN_DIRS:
        path = Path(directory) / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if found:
        return found
    raise SystemExit(f"drills: {name} not found (looked in {', '.join(PG_BIN_DIRS)} and PATH)")


class PrivatePostgres:
    """`initdb` + `pg_ctl` on a data directory under `root`, listening on 127.0.0.1:<free port> only.

    PostgreSQL refuses to run as root, so when the drill runs as root the cluster belongs to the
    `postgres` user and every pg_ctl call goes through `runuser -u postgres --`.
    """

    def __init__(self, root: Path, log_dir: Path):
        self.root = root / "pg"
        self.data = self.root / "data"
        self.log_file = log_dir / "postgres.log"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                raise SystemExit("drills: running as root needs a `postgres` user to own the private cluster")

    @property
    def url(self) -> str:
        return f"postgres://postgres@{LOOPBACK}:{self.port}/pufferpost_drill"

    def _run(self, argv: list[str], timeout: float) -> str:
        if self.user is not None:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def init(self) -> "PrivatePostgres":
        self.root.mkdir(mode=0o700)
        self.log_file.touch()
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
            os.chown(self.log_file, self.user.pw_uid, self.user.pw_gid)
            # The log directory must be reachable by the postgres user.
            os.chmod(self.log_file.parent, 0o755)
        self._run(
            [_pg_tool("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            timeout=120,
        )
        return self

    def _options(self) -> str:
        # fsync stays on: the drill restarts the server and must not lose committed rows.
        return (
            f"-p {self.port} -k {self.root} -c listen_addresses={LOOPBACK} -c max_connections=200 "
            "-c shared_buffers=128MB -c synchronous_commit=on"
        )

    def _ctl(self, action: str, timeout: float = 90) -> None:
        argv = [_pg_tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", str(int(timeout))]
        if action in ("start", "restart"):
            argv += ["-o", self._options()]
        if action in ("stop", "restart"):
            argv += ["-m", "fast"]
        self._run([*argv, action], timeout=timeout + 30)

    def start(self) -> None:
        self._ctl("start")
        wait_for_port(self.port, timeout=30)

    def restart(self) -> None:
        self._ctl("restart")
        wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop", timeout=60)


class PrivateRedis:
    """`redis-server` as a child process on 127.0.0.1:<free port>, no persistence (a restart empties it)."""

    def __init__(self, children: Children):
        self.children = children
        self.port = free_port()
        self.child: Child | None = None
        self.generation = 0

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise SystemExit("drills: redis-server not found")
        argv = [redis_server, "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
        argv += ["--daemonize", "no", "--protected-mode", "yes"]
        self.generation += 1
        self.child = self.children.start(f"redis-{self.generation}", argv)
        wait_for_port(self.port, timeout=30, process=self.child)

    def stop(self) -> None:
        if self.child is not None:
            self.children.stop(self.child)
            self.child = None

    def restart(self, *, down: float = 0.0) -> None:
        """Stop (everything in memory is gone), stay down `down` seconds, start empty on the same port."""
        self.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the port is free again once the old server is gone
            try:
                wait_for_port(self.port, timeout=0.2)
            except TimeoutError:
                break
        time.sleep(down)
        self.start()
