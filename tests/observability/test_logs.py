"""Log lines: one timestamp format, text or JSON, with the fields after the message. Beat's own
lines, from a real beat: tests/e2e/test_observability.py."""

import json
import logging
import re

from pufferpost.logs import JsonFormatter, TextFormatter, fields

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
