"""Smoke test of the `make bench` harness: a tiny send + batch run end to end (structure, not timing).

It starts its own gunicorn on its own database (pufferpost_bench_smoke_…, dropped afterwards) and
Redis prefix, so it never meets a real bench run or another test session.
"""

import json
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bench_quick(tmp_path, *options: str, timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    """`bench.run --quick` on a database and Redis prefix of its own; (the run, results.json)."""
    tag = uuid.uuid4().hex[:10]
    output = tmp_path / "results.json"
    argv = [sys.executable, "-m", "bench.run", "--quick", *options, "--database", f"pufferpost_bench_smoke_{tag}"]
    argv += ["--redis-prefix", f"pp-bench-smoke-{tag}:", "--output", str(output)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(output.read_text())
    assert result["failures"] == {}
    return done, result


def test_quick_send_and_batch_run_prints_a_table_and_writes_results(tmp_path):
    options = ("--only", "send,batch", "--send-count", "100", "--warmup", "10", "--batch-count", "2")
    done, result = bench_quick(tmp_path, *options, timeout=120)

    assert "req/s (c=16)" in done.stdout
    assert {"date", "machine", "rows", "details", "options"} <= set(result)
    metrics = {(row["workload"], row["metric"]) for row in result["rows"]}
    assert ("send", "req/s (c=16)") in metrics
    assert ("batch", "items/s vs single sends/s") in metrics
    send = result["details"]["send"]
    for side in ("app", "ceiling"):
        assert send[side]["errors"] == 0
        assert send[side]["ok"] == send[side]["requests"] == 100
        assert send[side]["p50_ms"] > 0
    assert result["details"]["batch"]["ok"] == 2


def test_quick_retention_run_purges_one_month_and_reads_across_months(tmp_path):
    options = ("--only", "retention", "--retention-messages", "500", "--retention-rows", "3000", "--read-count", "10")
    _, result = bench_quick(tmp_path, *options, timeout=300)

    purge = result["details"]["retention_purge"]
    # The seeded month went whole (the workload itself checks that no other month lost a row).
    assert purge["messages"] == 500 and any(line.endswith("dropped (500 messages)") for line in purge["report"])
    assert purge["bytes_after"]["messaging_message"] < purge["bytes_before"]["messaging_message"]
    reads = result["details"]["retention_reads"]
    assert reads["partitions"] >= 2 and len(reads["cases"]) == 2
    assert all(case["errors"] == 0 and case["ok"] == 10 for case in reads["cases"].values())


def test_quick_delivery_run_starts_its_workers_and_delivers_every_message(tmp_path):
    # This workload once waited for a "ready." line its workers' log level hid: it never ran.
    options = ("--only", "delivery", "--delivery-count", "200", "--ceiling-count", "200")
    _, result = bench_quick(tmp_path, *options, timeout=300)

    metrics = {row["metric"]: row for row in result["rows"] if row["workload"] == "delivery"}
    assert metrics["msg/s (200/200 delivered)"]["value"] > 0
    # The drain phase: accepted while no worker ran, then every one delivered by restarted workers.
    assert metrics["drain msg/s (accepted first; 200/200 delivered)"]["value"] > 0
    assert result["details"]["delivery"]["drain"]["statuses"] == {"delivered": 200}
    assert any(name.startswith("ceiling: render+sign+send") for name in metrics)
