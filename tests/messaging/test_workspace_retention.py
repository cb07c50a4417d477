"""Per-workspace retention inside kept months (messaging.retention) on the real PostgreSQL."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from messaging import partitions, retention
from messaging.models import (
    DeliveryAttempt,
    IdempotencyRecord,
    Message,
    MessageAttachment,
    MessageBody,
    MessageContent,
    MessageEvent,
    Suppression,
)
from tests.helpers import assert_envelope
from tests.messaging.conftest import make_sendable
from tests.messaging.test_retention import AUGUST, JULY, JUNE, _everything, _exists, _message

CONTENT_MODELS = (MessageEvent, DeliveryAttempt, MessageContent, MessageBody, MessageAttachment)


@pytest.fixture
def months(db):
    partitions.ensure_partitions(now=JUNE, ahead=3)


def _content_of(message_ids) -> dict[str, set[str]]:
    """{message id: the content tables still holding a row of it}."""
    found = {pk: set() for pk in message_ids}
    for model in CONTENT_MODELS:
        for pk in model.objects.filter(message_id__in=message_ids).values_list("message_id", flat=True):
            found[pk].add(model._meta.model_name)
    return found


EVERYTHING = {"messageevent", "deliveryattempt", "messagecontent", "messagebody", "messageattachment"}


@pytest.fixture
def two_workspaces(months, workspace, other_workspace):
    """`workspace` keeps content 1 day and messages 20 days after their month; `other_workspace`
    the defaults (30 and 90). Mail of both in June and July 2026, at various ages and states."""
    workspace.content_retention_days, workspace.message_retention_days = 1, 20
    workspace.save()
    mine, theirs = make_sendable(workspace), make_sendable(other_workspace)
    made = {
        "mine_june": _message(mine, JUNE + timedelta(days=3)),
        "mine_june_bounced": _message(mine, JUNE + timedelta(days=20), status="bounced"),
        "mine_july": _message(mine, JULY + timedelta(days=2)),
        "mine_july_old_sent": _message(mine, JULY + timedelta(days=3), status="sent"),
        "mine_july_recent_sent": _message(mine, JULY + timedelta(days=30, hours=20), status="sent"),
        "mine_july_queued": _message(mine, JULY + timedelta(days=30, hours=21), status="queued"),
        "mine_july_accepted": _message(mine, JULY + timedelta(days=30, hours=22), status="accepted"),
        "theirs_june": _message(theirs, JUNE + timedelta(days=4)),
        "theirs_july": _message(theirs, JULY + timedelta(days=4)),
    }
    for message in made.values():
        _everything(message)
    made["suppression"] = Suppression.objects.create(
        workspace=workspace, email="gone@example.com", reason="bounce", source_message=made["mine_june_bounced"]
    )
    IdempotencyRecord.objects.create(
        workspace=workspace, key="june", fingerprint="f", message=made["mine_june"], response={}
    )
    return made


NOW = AUGUST + timedelta(days=2, hours=12)  # 3 August 2026, noon


def test_a_shorter_workspace_retention_holds_inside_the_months_its_neighbours_keep(api, two_workspaces):
    made = two_workspaces
    # The whole-month purge first (as the beat task does): June's content goes at 30 days, for both.
    month_report = partitions.purge(now=NOW)
    assert [(m.month, m.action) for m in month_report.months] == [("2026-06", "content dropped"), ("2026-07", "kept")]

    report = retention.workspace_retention_purge(now=NOW)

    ws = made["mine_june"].workspace_id
    assert [(p.month, p.workspace_id, p.what, p.messages) for p in report.purges] == [
        ("2026-06", ws, "messages", 2),  # 20 days after June: mine are gone, theirs (90 days) stay
        ("2026-07", ws, "content", 2),  # 1 day after July: the content of my finished mail goes
    ]
    assert report.complete
    remaining = set(Message.objects.values_list("pk", flat=True))
    assert remaining == {
        made[name].pk
        for name in (
            "mine_july",
            "mine_july_old_sent",
            "mine_july_recent_sent",
            "mine_july_queued",
            "mine_july_accepted",
            "theirs_june",
            "theirs_july",
        )
    }
    july = [made[n].pk for n in made if "july" in n]
    assert _content_of(july) == {
        made["mine_july"].pk: set(),
        # Accepted more than the retry window and the DSN grace ago: its answer is not coming.
        made["mine_july_old_sent"].pk: set(),
        # Still on its way: untouched, delivery may still need its body and attachments.
        made["mine_july_recent_sent"].pk: EVERYTHING,
        made["mine_july_queued"].pk: EVERYTHING,
        made["mine_july_accepted"].pk: EVERYTHING,
        made["theirs_july"].pk: EVERYTHING,
    }
    # June's content was dropped with its partitions; the month itself is kept for the neighbour.
    assert _exists(partitions.partition_name("messaging_message", JUNE))
    assert _content_of([made["theirs_june"].pk]) == {made["theirs_june"].pk: set()}
    # Suppressions stay and keep suppressing; only their link to the purged message goes.
    suppression = made["suppression"]
    suppression.refresh_from_db()
    assert suppression.source_message_id is None and suppression.email == "gone@example.com"
    assert not IdempotencyRecord.objects.filter(key="june").exists()

    # Reads: a purged message is a clean 404; a message whose content went says why.
    for route in ("/v1/messages/{id}", "/v1/messages/{id}/events", "/v1/messages/{id}/content"):
        assert_envelope(api.get(route.format(id=made["mine_june"].id)), 404, "message_not_found")
    kept = made["mine_july"].id
    assert api.get(f"/v1/messages/{kept}").json()["status"] == "delivered"
    assert api.get(f"/v1/messages/{kept}/events").json() == {"data": [], "next_cursor": None}
    error = assert_envelope(api.get(f"/v1/messages/{kept}/content"), 409, "content_not_available")
    assert "content retention (1 days after its month)" in error["message"]
    assert api.get(f"/v1/messages/{made['mine_july_queued'].id}/events").json()["data"] != []
    # Mail not handed to delivery yet has no content to have lost, whatever its month's age.
    MessageContent.objects.filter(message=made["mine_july_accepted"]).delete()
    error = assert_envelope(
        api.get(f"/v1/messages/{made['mine_july_accepted'].id}/content"), 409, "content_not_available"
    )
    assert "has not been built for delivery yet" in error["message"]
    # The cursor walks what is left of the workspace, newest first.
    seen, cursor = [], None
    for _ in range(10):
        page = api.get("/v1/messages", {"limit": 2} | ({"cursor": cursor} if cursor else {})).json()
        seen += [m["id"] for m in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(
        Message.objects.filter(workspace_id=ws).order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    assert len(seen) == 5

    # Idempotent: a second run finds nothing more.
    again = retention.workspace_retention_purge(now=NOW)
    assert again.purges == [] and again.batches == 0


def test_it_works_in_bounded_batches_and_the_next_run_goes_on(two_workspaces, caplog):
    made = two_workspaces
    with caplog.at_level("WARNING", logger="pufferpost.retention"):
        first = retention.workspace_retention_purge(now=NOW, batch_size=1, max_batches=1)
    assert not first.complete and first.batches == 1
    assert "stopped after 1 batch(es)" in caplog.text
    assert first.as_lines()[-1] == "per-workspace retention: batch limit reached; the next run goes on"
    assert Message.objects.filter(pk__in=[made["mine_june"].pk, made["mine_june_bounced"].pk]).count() == 1
    runs = [first]
    for _ in range(6):
        runs.append(retention.workspace_retention_purge(now=NOW, batch_size=1, max_batches=1))
        if runs[-1].complete and not runs[-1].purges:
            break
    assert sum(p.messages for r in runs for p in r.purges if p.what == "messages") == 2
    assert sum(p.messages for r in runs for p in r.purges if p.what == "content") == 2
    assert not Message.objects.filter(pk__in=[made["mine_june"].pk, made["mine_june_bounced"].pk]).exists()
    assert _content_of([made["mine_july"].pk, made["mine_july_old_sent"].pk]) == {
        made["mine_july"].pk: set(),
        made["mine_july_old_sent"].pk: set(),
    }


def test_a_workspace_at_the_longest_setting_waits_for_the_months_drop(two_workspaces, workspace, other_workspace):
    # Both workspaces at the same settings: no row-by-row work at all, the partitions go whole.
    workspace.content_retention_days, workspace.message_retention_days = 30, 90
    workspace.save()
    report = retention.workspace_retention_purge(now=AUGUST + timedelta(days=60))
    assert report.purges == [] and report.batches == 0
    assert Message.objects.count() == 9
    assert MessageContent.objects.count() == 9


def test_nothing_happens_before_a_workspaces_own_setting_runs_out(two_workspaces):
    # 1 July, 23:00: a day after June has not passed yet.
    report = retention.workspace_retention_purge(now=JULY + timedelta(hours=23))
    assert report.purges == []
    assert Message.objects.count() == 9 and MessageContent.objects.count() == 9
    # At midnight my June content goes; my June messages 20 days after June.
    report = retention.workspace_retention_purge(now=JULY + timedelta(days=1))
    assert [(p.month, p.what, p.messages) for p in report.purges] == [("2026-06", "content", 2)]
    assert Message.objects.count() == 9 and MessageContent.objects.count() == 7
    report = retention.workspace_retention_purge(now=JULY + timedelta(days=19, hours=23))
    assert report.purges == []
    report = retention.workspace_retention_purge(now=JULY + timedelta(days=20))
    assert [(p.month, p.what, p.messages) for p in report.purges] == [("2026-06", "messages", 2)]
    assert Message.objects.count() == 7


def test_the_command_and_its_dry_run_say_what_goes(two_workspaces):
    made = two_workspaces
    out = StringIO()
    call_command("partitions", "--purge", "--dry-run", stdout=out)  # at the real clock, past all of it
    assert f"2026-06 {made['mine_june'].workspace_id}: would remove 2 message(s)" in out.getvalue()
    assert Message.objects.count() == 9 and MessageContent.objects.count() == 9
    dry = retention.workspace_retention_purge(now=NOW, dry_run=True)
    ws = made["mine_june"].workspace_id
    assert dry.as_lines(dry_run=True) == [
        f"2026-06 {ws}: would remove 2 message(s) (message_retention_days 20)",
        f"2026-07 {ws}: would remove the content of 2 message(s) (content_retention_days 1)",
    ]
    assert Message.objects.count() == 9 and MessageContent.objects.count() == 9


def test_the_beat_task_drops_the_months_then_applies_each_workspaces_own_setting(two_workspaces):
    from messaging.tasks import retention as retention_task

    made = two_workspaces
    # At the real clock (past 2026-09): June goes whole; July is held by my queued and accepted
    # mail, so inside it my finished messages go (20 days) and the neighbour's stay (90 days).
    lines = retention_task()
    ws = made["mine_june"].workspace_id
    assert "2026-06: dropped (3 messages)" in lines
    assert "2026-07: blocked (still on their way: 1 accepted, 1 queued)" in lines
    assert f"2026-07 {ws}: removed 3 message(s) (message_retention_days 20)" in lines
    assert set(Message.objects.values_list("pk", flat=True)) == {
        made[name].pk for name in ("mine_july_queued", "mine_july_accepted", "theirs_july")
    }
