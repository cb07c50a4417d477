"""The drill's own checks, on made-up evidence (fast; part of the default run): a duplicate, a
delivered message the MX never saw, or a message the MX took that the database does not call
delivered must each be caught; and the MX process logs each accepted Message-ID exactly once."""

import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

from bench.common import free_port, wait_for_port
from drills.chaos import mx_findings
from drills.mx_proc import message_id_of
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]


def test_a_clean_log_has_no_findings():
    lines = ["<msg_a@mail.test>", "<msg_b@mail.test>", "<msg_c@mail.test>"]
    status = {"msg_a": "delivered", "msg_b": "delivered", "msg_c": "sent", "msg_d": "bounced"}
    found = mx_findings(lines, delivered=["msg_a", "msg_b"], status_of=status, unknown={"msg_c"})
    assert (found.duplicates, found.missing, found.inconsistent) == ({}, [], [])
    assert found.receptions == 3 and found.seen == {"msg_a", "msg_b", "msg_c"}


def test_duplicates_missing_and_inconsistent_receptions_are_found():
    lines = ["<msg_a@mail.test>", "<msg_a@mail.test>", "<msg_x@mail.test>", "<msg_q@mail.test>", "<missing>"]
    status = {"msg_a": "delivered", "msg_b": "delivered", "msg_x": "bounced", "msg_q": "queued"}
    found = mx_findings(lines, delivered=["msg_a", "msg_b"], status_of=status, unknown=set())
    assert found.duplicates == {"<msg_a@mail.test>": 2}
    assert found.missing == ["msg_b"]
    assert found.inconsistent == ["<missing>", "msg_q", "msg_x"]


def test_a_sent_message_counts_only_with_an_unknown_outcome():
    found = mx_findings(["<msg_s@mail.test>"], delivered=[], status_of={"msg_s": "sent"}, unknown=set())
    assert found.inconsistent == ["msg_s"]


def test_message_id_of_reads_the_header_only():
    raw = b"Subject: hi\r\nMessage-ID:\r\n <msg_01J@mail.test>\r\n\r\nMessage-ID: <not-this@x>\r\n"
    assert message_id_of(raw) == "<msg_01J@mail.test>"
    assert message_id_of(b"Subject: none\r\n\r\nbody") == "<missing>"


def test_the_mx_process_logs_every_accepted_message_id_and_refuses_bounce_recipients(tmp_path):
    port, log = free_port(), tmp_path / "ids.log"
    argv = [sys.executable, "-m", "drills.mx_proc", str(port), str(log)]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            for n in range(2):
                message = EmailMessage()
                message["From"], message["To"], message["Subject"] = "a@mail.test", "b@example.test", "x"
                message["Message-ID"] = f"<msg_{n}@mail.test>"
                message.set_content("hello")
                smtp.send_message(message)
            refused = smtp.sendmail("a@mail.test", ["bounce-1@example.test"], b"Message-ID: <msg_r@mail.test>\r\n\r\nx")
    except smtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert "bounce-1@example.test" in refused
    wait_for(lambda: log.read_text().count("\n") >= 2, what="both Message-IDs in the log", timeout=5, interval=0.05)
    assert log.read_text().splitlines() == ["<msg_0@mail.test>", "<msg_1@mail.test>"]
