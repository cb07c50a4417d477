"""Log lines as the processes really write them: one timestamp format, text or JSON, no beat chatter."""

import json
import logging
import re
import time

from pufferpost.logs import JsonFormatter, TextFormatter, fields
from tests.helpers import wait_for

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def record(message, *args, **extra):
    entry = logging.LogRecord("pufferpost.delivery", logging.WARNING, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    return entry


def test_text_lines_put_fields_after_the_message_and_quote_what_needs_it():
    line = TextFormatter().format(record("delivery %s", "deferred", **fields(code=451, response="try later", mx=None)))
    assert re.match(rf"^{TS} WARNING pufferpost\.delivery \[\d+\] delivery deferred ", line)
    assert line.endswith('code=451 response="try later"')  # mx=None is left out


def test_json_lines_are_one_object_with_the_fields_at_the_top():
    body = json.loads(JsonFormatter().format(record("delivery %s", "bounced", **fields(code=550, message="msg_1"))))
    assert re.fullmatch(TS, body["ts"])
    assert body["level"] == "WARNING" and body["logger"] == "pufferpost.delivery"
    assert body["message"] == "delivery bounced" and body["code"] == 550
    assert body["message"] != "msg_1"  # a field never overwrites the core keys


def test_beat_in_json_logs_its_start_but_not_every_task_it_sends(processes, redis_client):
    from django.conf import settings

    queue = settings.REDIS_KEY_PREFIX + "webhooks"
    beat = processes.beat(PUFFERPOST_LOG_FORMAT="json", PUFFERPOST_WEBHOOKS_SWEEP_INTERVAL="0.5")
    # No worker runs: what beat sends piles up in the queue, which proves it ticked.
    wait_for(
        lambda: redis_client.llen(queue) >= 3, what="three webhook sweeps sent by beat", timeout=60, processes=[beat]
    )
    time.sleep(0.5)
    lines = [line for line in beat.log().splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    assert any(entry["message"] == "beat: Starting..." for entry in parsed)
    assert all(re.fullmatch(TS, entry["ts"]) for entry in parsed)
    assert "Sending due task" not in beat.log()
