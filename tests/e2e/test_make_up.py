"""`make up` / `make start` / `make down` as a newcomer runs them: a real make, a real bin/run-local
process group on free loopback ports, the test's database; every wait is bounded."""

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.processes import REPO, child_env

pytestmark = pytest.mark.e2e


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports, each free for TCP and UDP alike (the dev DNS binds both).

    Every probe stays bound until all are chosen, so the kernel never hands out one port twice.
    """
    probes, ports = [], []
    try:
        while len(ports) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(tcp)
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probes.append(udp)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
        return ports
    finally:
        for probe in probes:
            probe.close()


def descendants(root: int) -> set[int]:
    """Every live process below `root` (read from /proc), found before anything is stopped."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate, what: str, timeout: float, log: Path | None = None):
    def tail():
        return "\n" + log.read_text(errors="replace")[-4000:] if log and log.exists() else ""

    wait_for(predicate, what=what, timeout=timeout, interval=0.25, detail=tail)


def get(url):
    request = urllib.request.Request(url)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def stack_env(transactional_db, dns, tmp_path):
    web_port, dns_port, mx_port = free_ports(3)
    web = f"127.0.0.1:{web_port}"
    env = child_env(
        PUFFERPOST_VAR_DIR=tmp_path / "var",
        WEB_ADDRESS=web,
        DEV_DNS_PORT=dns_port,
        MAIL_CATCHER_PORT=mx_port,
        MAKEFLAGS="",
    )
    env.pop("MAKELEVEL", None)
    return env, web, tmp_path / "var"


def credentials(var: Path) -> dict:
    return json.loads(
        next(line for line in (var / "demo-credentials.txt").read_text().splitlines() if line.startswith("{"))
    )


def test_make_up_prints_the_credentials_when_ready_and_sigterm_to_make_stops_every_child(stack_env, tmp_path):
    env, web, var = stack_env
    log = tmp_path / "make-up.log"
    with open(log, "wb") as out:
        make = subprocess.Popen(
            ["make", "-s", "up"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(lambda: (var / "run-local.ready").exists(), "make up to get ready", 240, log)
        printed = log.read_text()
        found = credentials(var)
        assert f"API key:      {found['api_key']}" in printed
        assert f"Password:     {found['admin_password']}" in printed
        assert printed.index("PufferPost is ready.") > printed.index("Starting development server")
        status, headers, _ = get(f"http://{web}/")
        assert status == 302 and headers["Location"] == "/docs/"
        assert get(f"http://{web}/readyz")[0] == 200
        request = urllib.request.Request(
            f"http://{web}/v1/workspace", headers={"Authorization": f"Bearer {found['api_key']}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["id"] == found["workspace_id"]
        children = descendants(make.pid)
        assert len(children) >= 6  # run-local, DNS, catcher, runserver (+ its reloader child), worker, beat

        make.send_signal(signal.SIGTERM)  # only make: run-local must notice and stop everything
        wait_until(
            lambda: not any(alive(pid) for pid in children), "every child to stop after SIGTERM to make", 60, log
        )
        assert "run-local: stopped" in log.read_text()
        assert not (var / "run-local.pid").exists()
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
        for pid in descendants(make.pid):
            os.kill(pid, signal.SIGKILL)
        make.wait(timeout=30)


def test_make_start_runs_in_the_background_refuses_a_second_run_and_make_down_stops_it(stack_env, tmp_path):
    env, web, var = stack_env
    started = subprocess.run(["make", "-s", "start"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    pid = None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "make down stops it" in started.stdout and "PufferPost is ready." in started.stdout
        first = credentials(var)
        assert first["api_key"] in started.stdout
        pid = int((var / "run-local.pid").read_text())
        children = descendants(pid)
        assert alive(pid) and len(children) >= 5
        assert get(f"http://{web}/readyz")[0] == 200

        again = subprocess.run(["make", "-s", "start"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode != 0 and "already running" in again.stdout + again.stderr

        down = subprocess.run(["make", "-s", "down"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert down.returncode == 0 and f"Stopped the local stack (pid {pid})" in down.stdout
        wait_until(
            lambda: not alive(pid) and not any(alive(p) for p in children), "every child to stop after make down", 30
        )
        assert "run-local: stopped" in (var / "run-local.log").read_text()
        assert (
            subprocess.run(
                ["make", "-s", "down"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
            ).stdout.strip()
            == "The local stack is not running."
        )
    finally:
        if pid and alive(pid):
            for child in descendants(pid):
                os.kill(child, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
