"""The import rules of STYLE.md, checked: an import that crosses a line fails the suite.

`lint-imports` checks the contracts in pyproject.toml (layers, independence, no cycles); the
tests below check what it cannot express: the task convention, that Celery's autodiscovery
alone registers every task, and that hand-written SQL stays in the modules allowed to hold it.
"""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pufferpost", "domains", "senders", "templates_app", "messaging")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(cwd / "pyproject.toml")],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imports(tree: ast.Module):
    """(imported module, alias names, at module top?) for every project import in the module."""
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name, alias.asname, id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, alias.asname, id(node) in top


def test_the_import_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_import_contracts_catch_a_crossing(tmp_path):
    """Negative control: the same contracts on a copy where domains imports messaging."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    models = tmp_path / "domains" / "models.py"
    models.write_text(models.read_text() + "\nfrom messaging.models import Message  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "domains.models -> messaging.models" in result.stdout


def test_tasks_import_services_inside_the_task_and_services_import_tasks_at_module_top():
    """HackSoft's convention (STYLE.md): no import cycle exists when any module is imported."""
    wrong = []
    for path, module in _modules():
        tree = ast.parse(path.read_text())
        for imported, name, asname, at_top in _imports(tree):
            if not imported.startswith(PACKAGES):
                continue
            target = f"{imported}.{name}" if name else imported
            is_services = imported.endswith(".services") or name == "services"
            if module.endswith(".tasks") and at_top and is_services:
                wrong.append(f"{module}: imports {target} at module top (import it inside the task)")
            if not module.endswith(".tasks") and imported.endswith(".tasks"):
                if not at_top:
                    wrong.append(f"{module}: imports {target} inside a function (import it at module top)")
                elif not (asname or "").endswith("_task"):
                    wrong.append(f"{module}: imports {target} as {asname or name} (alias it `{name}_task`)")
    assert wrong == []


def test_autodiscovery_alone_registers_every_task():
    declared = set()
    for path, _ in _modules():
        if path.name != "tasks.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "shared_task":
                declared |= {kw.value.value for kw in node.keywords if kw.arg == "name"}
    assert declared, "no tasks found"
    script = (
        "import json, django; django.setup()\n"
        "from pufferpost.celery import app\n"
        "app.loader.import_default_modules()\n"
        "print(json.dumps(sorted(name for name in app.tasks if not name.startswith('celery.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert declared <= set(json.loads(result.stdout.splitlines()[-1]))


# Where hand-written SQL may live besides each app's `queries.py` (and migrations, which
# `_modules` leaves out): each entry says why its statements have no place there.
SQL_ALLOWED = {
    # Partition DDL: creating, detaching and dropping monthly partitions, the catalog reads it
    # needs (to_regclass, pg_inherits, pg_constraint), a purge's lock timeout and constraint mode.
    # None is a row read or write (the late rows' DELETE is in messaging/queries.py, with its ORM
    # reading); the module reads rows through the ORM (tests/messaging/test_partition_reads.py).
    "messaging/partitions.py",
}
# Calls that hand SQL to the database, and the names that carry raw SQL into the ORM.
SQL_CALLS = {"cursor", "raw", "extra"}
SQL_NAMES = {"RawSQL"}


def _sql_sites(source: str) -> list[str]:
    """Where `source` hands the database SQL of its own: `connection.cursor()`, `cursor.execute()`,
    `.raw()`, `.extra()`, `RawSQL`, or psycopg's connection under Django's."""
    sites = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = ast.unparse(node.func.value)
            if node.func.attr in SQL_CALLS or (
                node.func.attr in ("execute", "executemany") and "cursor" in receiver.lower()
            ):
                sites.append(f"{node.lineno}: {ast.unparse(node.func)}()")
        elif isinstance(node, ast.Name) and node.id in SQL_NAMES:
            sites.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.alias) and node.name.rpartition(".")[2] in SQL_NAMES:
            sites.append(f"{getattr(node, 'lineno', '?')}: import {node.name}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "connection"
            and "connection" in ast.unparse(node.value).lower()
        ):
            sites.append(f"{node.lineno}: {ast.unparse(node)}")
    return sites


def test_hand_written_sql_lives_only_in_queries_modules_and_the_allowed_ones():
    found = []
    for path, _ in _modules():
        relative = path.relative_to(ROOT).as_posix()
        if path.name == "queries.py" or relative in SQL_ALLOWED:
            continue
        found += [f"{relative}:{site}" for site in _sql_sites(path.read_text())]
    assert found == [], "hand-written SQL belongs in the app's queries.py (README, Development)"
    for relative in SQL_ALLOWED:
        assert _sql_sites((ROOT / relative).read_text()), f"{relative} holds no SQL: drop it from SQL_ALLOWED"


def test_the_sql_fence_catches_every_way_in():
    """Negative control: each way of handing the database SQL is found."""
    ways = {
        "from django.db import connection\nwith connection.cursor() as c:\n    c.execute('SELECT 1')": 1,
        "from django.db import connections\nconnections['default'].cursor()": 1,
        "def f(cursor):\n    cursor.executemany('INSERT', [])": 1,
        "Message.objects.raw('SELECT * FROM messaging_message')": 1,
        "Message.objects.extra(where=['1 = 1'])": 1,
        "from django.db.models.expressions import RawSQL\nMessage.objects.annotate(x=RawSQL('1', []))": 2,
        "from django.db import connection\nconnection.connection.execute('SELECT 1')": 1,
    }
    for source, expected in ways.items():
        assert len(_sql_sites(source)) == expected, (source, _sql_sites(source))
    harmless = "pipe = redis.pipeline()\npipe.execute()\nerror.extra\nMessage.objects.filter(pk=1).update(x=1)"
    assert _sql_sites(harmless) == []
