"""The state one bench run shares between workloads, and the rows of its table."""

from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Children, wait_for_port


@dataclass
class Row:
    workload: str
    metric: str
    value: float | str | None
    unit: str = ""
    ceiling: float | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Context:
    args: object
    env: dict
    children: Children
    log_dir: Path
    fixture: object = None
    web_port: int | None = None
    rows: list[Row] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def row(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.fixture.api_key}"}

    def batch_request(self, offset: int, count: int) -> bytes:
        """One POST /v1/messages/batch of `count` sends numbered from `offset` (seed.send_body)."""
        from bench import seed
        from bench.loadgen import http_request

        body = {"messages": [seed.send_body(self.fixture, offset + i) for i in range(count)]}
        return http_request("POST", "/v1/messages/batch", body=body, headers=self.auth(), port=self.web_port)

    def web(self) -> int:
        """gunicorn serving the app and the ceiling route (bench.settings), started once per run."""
        if self.web_port is not None:
            return self.web_port
        from bench.common import free_port, python_argv

        port = free_port()
        args = self.args
        argv = python_argv("-m", "gunicorn", "pufferpost.wsgi:application", "--bind", f"127.0.0.1:{port}")
        argv += ["--workers", str(args.gunicorn_workers), "--worker-class", args.gunicorn_class]
        if args.gunicorn_class == "gthread":
            argv += ["--threads", str(args.gunicorn_threads)]
        argv += ["--backlog", "2048", "--log-level", "warning", "--timeout", "60"]
        child = self.children.start("gunicorn", argv)
        wait_for_port(port, timeout=30, process=child)
        self.web_port = port
        return port
