"""A private Debian Postfix for the tests: the receiving MX that rejects, bounces later, or delays and expires.

Everything lives under one temporary directory — config_directory, queue_directory,
data_directory and the log (`maillog_file`) — and the instance listens on one loopback port only.
The system's /etc/postfix is never written or used (`meta_directory` points there only so
`postfix check` finds the package's file list). No DNS at all: Postfix sends only through the
transports the test gives it (`smtp:[127.0.0.1]:port`), everything else is an `error:` transport,
so it can never reach another host.

`bin/ensure-test-tools` installs the `postfix` package without configuring or starting the system
service. Postfix runs as root here: the master process drops to `mail_owner` (the package's
`postfix` user) for its daemons.

The instance is stopped by `postfix -c DIR stop`, then its master pid is awaited; whatever process
still carries this instance's MAIL_CONFIG after a bounded wait is killed by pid.
"""

import contextlib
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
MAIL_OWNER, SETGID_GROUP = "postfix", "postdrop"
STOP_TIMEOUT = 20.0


class PostfixError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _texthash(path: Path, entries: dict[str, str]) -> str:
    path.write_text("".join(f"{key} {value}\n" for key, value in entries.items()))
    return f"texthash:{path}"


# master.cf: the services a relay needs, nothing chrooted (the chroot would need copies of /etc).
_MASTER = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclass
class PrivatePostfix:
    """One Postfix instance. `relay_domains` are accepted for relaying to `transports[domain]`
    (`smtp:[127.0.0.1]:port`); `recipients` (when given) are the only addresses accepted in them,
    others get Postfix's own 550 5.1.1; `recipient_access` maps an address to an access action
    (`REJECT text` → 550 5.7.1). `transports` also routes the DSNs Postfix writes (to the return
    path's domain). `queue_lifetime` and `delay_warning` are seconds, so expiry takes seconds."""

    relay_domains: list[str]
    transports: dict[str, str]
    recipients: list[str] | None = None
    recipient_access: dict[str, str] = field(default_factory=dict)
    queue_lifetime: int = 8
    delay_warning: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    hostname: str = "mx.postfix.test"

    def __post_init__(self):
        self.port = self.port or free_port(self.host)
        self.base: Path | None = None
        self.master_pid: int | None = None

    # -- layout --

    @property
    def config_directory(self) -> Path:
        return self.base / "etc"

    @property
    def queue_directory(self) -> Path:
        return self.base / "spool"

    @property
    def log_file(self) -> Path:
        return self.base / "maillog"

    def _write_config(self) -> None:
        conf, data = self.config_directory, self.base / "lib"
        for directory in (conf, data, self.queue_directory):
            directory.mkdir()
        shutil.chown(data, MAIL_OWNER, MAIL_OWNER)  # master.lock and friends
        maps = {
            "transport_maps": _texthash(conf / "transport", self.transports),
            "access": _texthash(conf / "recipient_access", self.recipient_access),
        }
        relay_recipients = (
            _texthash(conf / "relay_recipients", dict.fromkeys(self.recipients, "OK"))
            if self.recipients is not None
            else ""
        )
        nowhere = "error:5.3.0 this test MTA delivers only through its transport map"
        main = {
            "compatibility_level": "3.6",
            "config_directory": conf,
            "queue_directory": self.queue_directory,
            "data_directory": data,
            "meta_directory": "/etc/postfix",  # read only: postfix-files, for `postfix check`
            "mail_owner": MAIL_OWNER,
            "setgid_group": SETGID_GROUP,
            "myhostname": self.hostname,
            "mydomain": self.hostname.partition(".")[2],
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": self.host,
            "inet_protocols": "ipv4",
            "mynetworks": f"{self.host}/32",
            "smtp_bind_address": self.host,
            "maillog_file": self.log_file,
            "maillog_file_prefixes": self.base,
            # Never DNS: clients are not looked up, next hops are address literals.
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "disable_vrfy_command": "yes",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "notify_classes": "",
            "relay_domains": " ".join(self.relay_domains),
            "relay_recipient_maps": relay_recipients,
            "transport_maps": maps["transport_maps"],
            "default_transport": nowhere,
            "relay_transport": nowhere,
            "local_transport": nowhere,
            # Relaying only to relay_domains (not even for mynetworks); then the access map.
            "smtpd_relay_restrictions": "reject_unauth_destination",
            "smtpd_recipient_restrictions": f"check_recipient_access {maps['access']}, permit",
            "access_map_reject_code": "550",
            # Seconds, not days: a deferred message is retried every second or two, warned about
            # after `delay_warning` and returned as expired after `queue_lifetime`.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "delay_warning_time": f"{self.delay_warning}s",
            "maximal_queue_lifetime": f"{self.queue_lifetime}s",
            "bounce_queue_lifetime": f"{self.queue_lifetime}s",
            "smtp_connect_timeout": "5s",
            "smtp_helo_timeout": "10s",
        }
        (conf / "main.cf").write_text("".join(f"{key} = {value}\n" for key, value in main.items()))
        (conf / "master.cf").write_text(_MASTER.format(listen=f"{self.host}:{self.port}"))

    # -- running --

    def _postfix(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        # The postfix command reports problems to its log (it writes stderr only to a terminal).
        env = {"PATH": "/usr/sbin:/usr/bin:/bin", "LANG": "C"}
        return subprocess.run(
            [POSTFIX, "-c", str(self.config_directory), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    def start(self, timeout: float = 60.0) -> "PrivatePostfix":
        if not os.path.exists(POSTFIX):
            raise PostfixError(f"{POSTFIX} is missing: bin/ensure-test-tools installs Debian's postfix package")
        self.base = Path(tempfile.mkdtemp(prefix="pufferpost-postfix-"))
        self.base.chmod(0o755)  # the daemons run as `postfix` and must reach the queue
        self._write_config()
        result = self._postfix("start", timeout=timeout)
        pid_file = self.queue_directory / "pid" / "master.pid"
        if result.returncode != 0 or not pid_file.exists():
            self.stop()
            raise PostfixError(f"postfix start failed (rc {result.returncode}):\n{self.log()}")
        self.master_pid = int(pid_file.read_text().split()[0])
        deadline = time.monotonic() + timeout
        while True:
            try:
                with smtplib.SMTP(self.host, self.port, timeout=5) as probe:
                    probe.noop()
                return self
            except OSError as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostfixError(f"postfix is not answering on {self.host}:{self.port}: {exc}\n{self.log()}")
                time.sleep(0.2)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except (OSError, TypeError):
            return "(no log)"

    def wait_for_log(self, needle: str, timeout: float = 60.0) -> str:
        """The first log line containing `needle`, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                if needle in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"Postfix never logged {needle!r} within {timeout:.0f}s; its log:\n{self.log()}")
            time.sleep(0.2)

    def _own_pids(self) -> list[int]:
        """Processes of this instance: the master and every daemon it started (they carry MAIL_CONFIG)."""
        marker = f"MAIL_CONFIG={self.config_directory}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                pids.append(int(entry))
        if self.master_pid is not None and _alive(self.master_pid) and self.master_pid not in pids:
            pids.append(self.master_pid)
        return pids

    def stop(self) -> None:
        if self.base is None:
            return
        if self.master_pid is not None and _alive(self.master_pid):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._postfix("stop", timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._own_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self._own_pids():  # still there after the bounded wait: by pid, never by name
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent to reap it does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
