"""`make drills` as a test (marker `drill`, excluded from the default run: it takes about 2 minutes).

    .venv/bin/python -m pytest -m drill

Runs the whole drill in its own process with 1,000 messages sent over 60 s (`make drills` sends
10,000): a private PostgreSQL and Redis on free loopback ports, workers SIGKILLed three times,
Redis and PostgreSQL restarted, the MX down for 30 s; plus the idempotency and rate-limit checks.
It never touches the shared PostgreSQL or Redis.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MESSAGES = 1000
TIMEOUT = 900


@pytest.mark.drill
def test_fault_drill_loses_nothing_and_sends_nothing_twice(tmp_path):
    output = tmp_path / "drill.json"
    argv = [sys.executable, "-m", "drills.run", "--messages", str(MESSAGES), "--submit-seconds", "60"]
    argv += ["--json", str(output)]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the drill's `finally` stops its PostgreSQL, Redis, workers, MX and DNS.
        process.terminate()
        stdout, stderr = process.communicate(timeout=120)
        pytest.fail(f"the drill took more than {TIMEOUT} s:\n{stdout[-12000:]}\n{stderr[-6000:]}")
    print(stdout[-12000:])

    assert process.returncode == 0, stdout[-12000:] + stderr[-6000:]
    result = json.loads(output.read_text())
    assert result["passed"], result["summary"]
    checks = {c["name"]: c for c in result["checks"]}
    assert all(c["passed"] for c in checks.values()), [n for n, c in checks.items() if not c["passed"]]
    assert sum(result["statuses"].values()) == MESSAGES
    assert set(result["statuses"]) <= {"delivered", "bounced", "errored", "suppressed", "sent (outcome unknown)"}
    assert [name for _, name, _ in result["timeline"]] == [
        "SIGKILL worker 1/3",
        "restart Redis",
        "SIGKILL worker 2/3",
        "MX outage",
        "restart PostgreSQL",
        "SIGKILL worker 3/3",
    ]
    idempotency = checks["50 concurrent same-key sends create one message"]["counts"]
    assert idempotency["messages_in_db"] == 1 and idempotency["distinct_ids_returned"] == 1
    rate = checks["rate limit holds exactly across 4 processes"]["counts"]
    assert rate["statuses"].get("202", rate["statuses"].get(202)) == rate["expected_accepted"] >= 100
