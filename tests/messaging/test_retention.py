"""Monthly partitions and retention (messaging.partitions) on the real PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from ulid import ULID

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
from tests.messaging.factories import MessageFactory

JUNE = datetime(2026, 6, 1, tzinfo=UTC)
JULY = datetime(2026, 7, 1, tzinfo=UTC)
AUGUST = datetime(2026, 8, 1, tzinfo=UTC)


def _id_at(moment: datetime) -> str:
    return "msg_" + str(ULID.from_datetime(moment))


def _where(table: str, column: str, value) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT tableoid::regclass::text FROM {table} WHERE "{column}" = %s', [value])
        return cursor.fetchone()[0]


def _exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


@pytest.fixture
def months(db):
    """Partitions for June to September 2026 (the test database has the current month and later)."""
    partitions.ensure_partitions(now=JUNE, ahead=3)


def _message(sendable, moment, status="delivered", **kwargs):
    message = MessageFactory(
        id=_id_at(moment),
        workspace=sendable.workspace,
        sender=sendable.sender,
        template=sendable.template,
        template_version=sendable.version,
        status=status,
        **kwargs,
    )
    Message.objects.filter(pk=message.pk).update(created_at=moment)
    message.refresh_from_db()
    return message


def _everything(message):
    """An event, an attempt, rendered content, a body and an attachment of `message`."""
    MessageEvent.objects.create(
        message=message, workspace=message.workspace, type="delivered", occurred_at=message.created_at
    )
    DeliveryAttempt.objects.create(message=message, state="succeeded", started_at=message.created_at)
    MessageContent.objects.create(message=message, subject="s", text="t", html="<p>h</p>", built_at=message.created_at)
    MessageBody.objects.create(message=message, subject="s", text="t")
    MessageAttachment.objects.create(
        message=message, position=0, filename="a.txt", content_type="text/plain", content=b"x"
    )


def test_the_message_tables_are_partitioned_by_range_of_the_message_id(db):
    with connection.cursor() as cursor:
        for table, key in partitions.PARTITIONED.items():
            cursor.execute(
                """SELECT p.partstrat, a.attname FROM pg_partitioned_table p
                     JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
                    WHERE p.partrelid = to_regclass(%s)""",
                [table],
            )
            assert cursor.fetchone() == ("r", key), table
            cursor.execute(
                """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = to_regclass(%s)""",
                [table],
            )
            children = {row[0] for row in cursor.fetchall()}
            now = timezone.now()
            expected = {
                partitions.partition_name(table, partitions.add_months(partitions.month_start(now), n))
                for n in range(2)
            }
            assert expected | {partitions.default_name(table)} <= children, table
    # Django's model state is unchanged: single-column primary keys.
    assert Message._meta.pk.column == "id" and MessageEvent._meta.pk.column == "id"


def test_every_unique_guarantee_and_foreign_key_survives(db):
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT conrelid::regclass::text, contype, pg_get_constraintdef(oid) FROM pg_constraint
                WHERE conrelid = ANY(%s::regclass[]) AND conparentid = 0 AND contype IN ('p', 'u', 'f')""",
            [list(partitions.PARTITIONED)],
        )
        found = {(t, k, d.split(" DEFERRABLE")[0]) for t, k, d in cursor.fetchall()}
    assert ("messaging_message", "p", "PRIMARY KEY (id)") in found
    assert ("messaging_messageevent", "p", "PRIMARY KEY (id, message_id)") in found
    assert ("messaging_deliveryattempt", "p", "PRIMARY KEY (id, message_id)") in found
    assert ("messaging_messagecontent", "p", "PRIMARY KEY (message_id)") in found
    assert ("messaging_messageattachment", "u", 'UNIQUE (message_id, "position")') in found
    for table in partitions.CONTENT:
        assert (table, "f", "FOREIGN KEY (message_id) REFERENCES messaging_message(id)") in found, table
    # Referencing a message that does not exist still fails (the foreign key reaches the partitions).
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "INSERT INTO messaging_deliveryattempt (message_id, state, started_at, mx_host, response, recipients) "
            "VALUES (%s, 'failed', now(), '', '', '{}')",
            [_id_at(timezone.now())],
        )


def test_rows_land_in_their_messages_month(months, workspace):
    sendable = make_sendable(workspace)
    june = _message(sendable, JUNE + timedelta(days=29, hours=23, minutes=59, seconds=59))
    july = _message(sendable, JULY)
    _everything(june)
    _everything(july)
    assert _where("messaging_message", "id", june.id) == "messaging_message_p2026_06"
    assert _where("messaging_message", "id", july.id) == "messaging_message_p2026_07"
    for table in partitions.CONTENT:
        assert _where(table, "message_id", june.id) == f"{table}_p2026_06"
        assert _where(table, "message_id", july.id) == f"{table}_p2026_07"
    # An id outside every month goes to the default partition instead of failing.
    odd = _message(sendable, datetime(2023, 1, 1, tzinfo=UTC))
    assert _where("messaging_message", "id", odd.id) == "messaging_message_default"


def test_the_cursor_and_filters_walk_across_a_month_boundary(api, months, workspace):
    sendable = make_sendable(workspace)
    made = []
    for i in range(-4, 5):  # four minutes on either side of midnight, 1 July, one message a minute
        moment = JULY + timedelta(minutes=i)
        made.append(_message(sendable, moment, status="bounced" if i % 2 else "delivered").id)
    # The same pages as an unpartitioned table gives: Message.objects' own order.
    for params, expected in (
        ({}, list(Message.objects.order_by("-created_at", "-id").values_list("id", flat=True))),
        (
            {"status": "bounced"},
            list(Message.objects.filter(status="bounced").order_by("-created_at", "-id").values_list("id", flat=True)),
        ),
    ):
        seen, cursor = [], None
        while True:
            page = api.get("/v1/messages", params | {"limit": 2} | ({"cursor": cursor} if cursor else {})).json()
            seen += [m["id"] for m in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected
        assert {_where("messaging_message", "id", i) for i in seen} == {
            "messaging_message_p2026_06",
            "messaging_message_p2026_07",
        }
    assert len(made) == 9


def test_creating_the_months_ahead_is_idempotent(db):
    march, april = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)
    created = partitions.ensure_partitions(now=march, ahead=1)
    assert sorted(created) == sorted(
        partitions.partition_name(t, m) for t in partitions.PARTITIONED for m in (march, april)
    )
    assert partitions.ensure_partitions(now=march, ahead=1) == []


def test_the_purge_drops_an_old_terminal_month_and_keeps_suppressions(api, months, workspace):
    sendable = make_sendable(workspace)
    old = _message(sendable, JUNE + timedelta(days=3))
    _everything(old)
    suppression = Suppression.objects.create(workspace=workspace, email=old.to, reason="bounce", source_message=old)
    IdempotencyRecord.objects.create(workspace=workspace, key="k1", fingerprint="f", message=old, response={})
    kept = _message(sendable, JULY + timedelta(days=3))
    # 90 days after June ended (the default message retention) plus a day.
    now = JULY + timedelta(days=91)
    report = partitions.purge(now=now)
    assert [(m.month, m.action) for m in report.months][:2] == [("2026-06", "dropped"), ("2026-07", "content dropped")]
    for table in partitions.PARTITIONED:
        assert not _exists(partitions.partition_name(table, JUNE)), table
    assert _exists(partitions.partition_name("messaging_message", JULY))
    assert not Message.objects.filter(pk=old.pk).exists()
    suppression.refresh_from_db()
    assert suppression.source_message_id is None and suppression.email == old.to
    assert not IdempotencyRecord.objects.filter(key="k1").exists()
    # A purged message is an ordinary 404 on every route, never a 500.
    for route in ("/v1/messages/{id}", "/v1/messages/{id}/events", "/v1/messages/{id}/content"):
        assert_envelope(api.get(route.format(id=old.id)), 404, "message_not_found")
    assert api.get(f"/v1/messages/{kept.id}").status_code == 200
    # The suppression still suppresses and is still listed.
    assert [s["email"] for s in api.get("/v1/suppressions").json()["data"]] == [old.to]


def test_a_month_holding_mail_still_on_its_way_is_left_alone(months, workspace, caplog):
    sendable = make_sendable(workspace)
    done = _message(sendable, JUNE + timedelta(days=1))
    waiting = _message(sendable, JUNE + timedelta(days=2), status="queued", next_attempt_at=timezone.now())
    sent = _message(sendable, JUNE + timedelta(days=2), status="sent")
    _everything(waiting)
    with caplog.at_level("WARNING", logger="pufferpost.retention"):
        report = partitions.purge(now=JULY + timedelta(days=400))
    assert report.months[0].month == "2026-06" and report.months[0].action == "blocked"
    # The `sent` message is a year old: settled (see the next tests); the queued one blocks.
    assert report.months[0].detail == "still on their way: 1 queued"
    assert "2026-06 not purged" in caplog.text
    assert Message.objects.filter(pk__in=[done.pk, waiting.pk, sent.pk]).count() == 3
    for table in partitions.PARTITIONED:
        assert _exists(partitions.partition_name(table, JUNE)), table
    assert DeliveryAttempt.objects.filter(message=waiting).exists()


def test_a_month_whose_sent_mail_never_got_its_final_answer_is_purged(months, workspace, settings):
    sendable = make_sendable(workspace)
    done = _message(sendable, JUNE + timedelta(days=1))
    # Accepted on 30 June, left for the receiving server, and no DSN or final answer since.
    unknown = _message(sendable, JUNE + timedelta(days=29), status="sent")
    _everything(unknown)
    now = JULY + timedelta(days=91)
    assert partitions.sent_settled_before(now) == now - timedelta(
        seconds=settings.PUFFERPOST_DELIVERY_RETRY_WINDOW + settings.PUFFERPOST_RETENTION_SENT_GRACE
    )
    report = partitions.purge(now=now)
    assert (report.months[0].month, report.months[0].action) == ("2026-06", "dropped")
    assert not Message.objects.filter(pk__in=[done.pk, unknown.pk]).exists()
    assert not _exists(partitions.partition_name("messaging_message", JUNE))


@pytest.mark.parametrize(
    "status, accepted, blocked_by",
    [
        # Accepted less than the retry window (72 h) plus the DSN grace (5 days) before the purge.
        ("sent", JULY - timedelta(hours=1), "1 sent"),
        ("queued", JUNE + timedelta(days=1), "1 queued"),
        ("accepted", JUNE + timedelta(days=1), "1 accepted"),
    ],
)
def test_a_month_with_recent_sent_or_any_queued_or_accepted_mail_is_kept(
    months, workspace, status, accepted, blocked_by
):
    workspace.content_retention_days = workspace.message_retention_days = 1
    workspace.save()
    sendable = make_sendable(workspace)
    done = _message(sendable, JUNE + timedelta(days=2))
    waiting = _message(sendable, accepted, status=status)
    _everything(waiting)
    now = JULY + timedelta(days=2)  # a day past both settings
    report = partitions.purge(now=now)
    assert (report.months[0].month, report.months[0].action) == ("2026-06", "blocked")
    assert report.months[0].detail == f"still on their way: {blocked_by}"
    assert Message.objects.filter(pk__in=[done.pk, waiting.pk]).count() == 2
    for table in partitions.PARTITIONED:
        assert _exists(partitions.partition_name(table, JUNE)), table
    # The per-workspace purge leaves that mail alone too.
    retention.workspace_retention_purge(now=now)
    assert _where("messaging_messagecontent", "message_id", waiting.pk) == "messaging_messagecontent_p2026_06"
    # A week later the `sent` one has settled, and the month goes; queued and accepted still block.
    later = partitions.purge(now=now + timedelta(days=7))
    assert later.months[0].action == ("dropped" if status == "sent" else "blocked")


def test_content_goes_before_the_message_and_the_api_says_why(api, months, workspace):
    sendable = make_sendable(workspace)
    message = _message(sendable, JUNE + timedelta(days=5))
    _everything(message)
    report = partitions.purge(now=JULY + timedelta(days=31))  # past 30 days, not 90
    assert (report.months[0].month, report.months[0].action) == ("2026-06", "content dropped")
    for table in partitions.CONTENT:
        assert not _exists(partitions.partition_name(table, JUNE)), table
    assert api.get(f"/v1/messages/{message.id}").json()["status"] == "delivered"
    assert api.get(f"/v1/messages/{message.id}/events").json() == {"data": [], "next_cursor": None}
    error = assert_envelope(api.get(f"/v1/messages/{message.id}/content"), 409, "content_not_available")
    assert "retention" in error["message"]
    # A late event of that month (an open weeks later) lands in the default partition and goes next run.
    MessageEvent.objects.create(message=message, workspace=workspace, type="opened", occurred_at=timezone.now())
    assert _where("messaging_messageevent", "message_id", message.id) == "messaging_messageevent_default"
    assert partitions.purge(now=JULY + timedelta(days=32)).late_rows_deleted == 1
    assert not MessageEvent.objects.filter(message=message).exists()


def test_the_longest_retention_of_the_workspaces_in_a_month_wins(months, workspace, other_workspace):
    other_workspace.message_retention_days = 365
    other_workspace.content_retention_days = 200
    other_workspace.save()
    mine = _message(make_sendable(workspace), JUNE + timedelta(days=1))
    theirs = _message(make_sendable(other_workspace), JUNE + timedelta(days=2))
    report = partitions.purge(now=JULY + timedelta(days=100))
    assert report.months[0].action == "kept"
    assert Message.objects.filter(pk__in=[mine.pk, theirs.pk]).count() == 2
    assert _exists(partitions.partition_name("messaging_messageevent", JUNE))
    assert partitions.purge(now=JULY + timedelta(days=366)).months[0].action == "dropped"


def test_a_dry_run_drops_nothing(months, workspace):
    message = _message(make_sendable(workspace), JUNE + timedelta(days=1))
    report = partitions.purge(now=JULY + timedelta(days=400), dry_run=True)
    assert report.months[0].action == "would drop"
    assert Message.objects.filter(pk=message.pk).exists()
    assert _exists(partitions.partition_name("messaging_message", JUNE))


def test_the_current_month_is_never_purged(workspace):
    message = MessageFactory(workspace=workspace, status="delivered")
    report = partitions.purge()
    current = f"{partitions.month_start(timezone.now()):%Y-%m}"
    assert all(m.month < current for m in report.months)
    assert Message.objects.filter(pk=message.pk).exists()


def test_the_command_creates_purges_and_lists(months, workspace):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("partitions", "--purge", "--dry-run", "--status", stdout=out)
    text = out.getvalue()
    assert "messaging_message_default" in text and "messaging_message_p2026_06" in text


def test_the_late_rows_delete_takes_only_default_partition_rows_of_months_whose_content_is_gone(months, workspace):
    sendable = make_sendable(workspace)
    june = _message(sendable, JUNE + timedelta(days=5))
    _everything(june)
    assert partitions.purge(now=JULY + timedelta(days=31)).months[0].action == "content dropped"
    # Three rows in the events' default partition: a late one of June, and two of months that
    # have no partitions but whose content was never dropped (before the epoch, and years ahead).
    before_epoch = _message(sendable, partitions.EPOCH - timedelta(days=10))
    years_ahead = _message(sendable, datetime(2030, 1, 15, tzinfo=UTC))
    for message in (june, before_epoch, years_ahead):
        MessageEvent.objects.create(message=message, workspace=workspace, type="opened", occurred_at=timezone.now())
        assert _where("messaging_messageevent", "message_id", message.id) == "messaging_messageevent_default"
    assert partitions.purge(now=JULY + timedelta(days=32)).late_rows_deleted == 1
    assert not MessageEvent.objects.filter(message=june).exists()
    assert MessageEvent.objects.filter(message__in=[before_epoch, years_ahead], type="opened").count() == 2
