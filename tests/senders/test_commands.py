import json
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from senders.models import SenderStateChange
from tests.processes import child_env
from tests.senders.factories import ActiveSenderFactory, PausedSenderFactory, SenderFactory


def review(*args):
    out = StringIO()
    call_command("review_sender", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.mark.parametrize(
    ("factory", "flag", "state"),
    [
        (SenderFactory, "--approve", "active"),
        (ActiveSenderFactory, "--pause", "paused"),
        (PausedSenderFactory, "--resume", "active"),
    ],
)
def test_review_sender_prints_one_json_line_and_records_the_change(db, factory, flag, state):
    sender = factory()

    printed = review(sender.id, flag, "--reason", "Checked by ops.")

    assert printed == {"id": sender.id, "state": state, "state_reason": "Checked by ops."}
    sender.refresh_from_db()
    assert sender.state == state
    change = SenderStateChange.objects.get(sender=sender)
    assert (change.to_state, change.reason, change.actor_label, change.actor) == (
        state,
        "Checked by ops.",
        "command",
        None,
    )


def test_the_reason_is_optional(db):
    sender = SenderFactory()
    assert review(sender.id, "--approve") == {"id": sender.id, "state": "active", "state_reason": ""}


def test_an_unknown_id_fails_clearly(db):
    with pytest.raises(CommandError, match="No sender snd_01J9Z4P2C8H3M0K7V5XB9R2TFE"):
        review("snd_01J9Z4P2C8H3M0K7V5XB9R2TFE", "--approve")


@pytest.mark.parametrize(
    ("factory", "flag"), [(SenderFactory, "--resume"), (SenderFactory, "--pause"), (ActiveSenderFactory, "--approve")]
)
def test_an_illegal_transition_fails_clearly_and_changes_nothing(db, factory, flag):
    sender = factory()
    with pytest.raises(CommandError, match=f"Cannot {flag[2:]} sender {sender.id}: it is {sender.state}"):
        review(sender.id, flag)
    sender.refresh_from_db()
    assert not SenderStateChange.objects.exists()


@pytest.mark.parametrize("flags", [[], ["--approve", "--pause"]])
def test_exactly_one_action_flag_is_required(db, flags):
    sender = SenderFactory()
    with pytest.raises(CommandError):
        review(sender.id, *flags)


def manage(*args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_from_the_shell_success_exits_zero_and_failures_do_not(transactional_db):
    sender = SenderFactory()

    approved = manage("review_sender", sender.id, "--approve", "--reason", "ok")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout) == {"id": sender.id, "state": "active", "state_reason": "ok"}

    again = manage("review_sender", sender.id, "--approve")
    assert again.returncode != 0
    assert f"Cannot approve sender {sender.id}: it is active." in again.stderr

    unknown = manage("review_sender", "snd_01J9Z4P2C8H3M0K7V5XB9R2TFE", "--approve")
    assert unknown.returncode != 0
    assert "No sender snd_01J9Z4P2C8H3M0K7V5XB9R2TFE." in unknown.stderr
