"""Every read of messaging_message, and of its events, attempts and content, runs on the index kept
for it (messaging/migrations/0011 and 0014).

Each case runs the product's own code, captures the statements it sends to PostgreSQL, and
EXPLAINs the ones over messaging_message with sequential scans disabled: the plan names the index
that serves the read, so dropping or reshaping it fails here. (How flat the reads stay at 1 M rows
is `make bench`'s reads workload.)
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging import limits
from messaging.delivery.sweeper import delivery_sweep
from messaging.feedback.reputation import sender_reputation_stats
from messaging.feedback.services import bounce_suppresses
from messaging.models import Message
from messaging.observability import pending_messages
from messaging.services import message_outbox_sweep
from pufferpost.pagination import encode_cursor
from tests.factories import WorkspaceFactory
from tests.messaging.factories import MessageFactory

TABLE = '"messaging_message"'


@pytest.fixture
def messages(workspace):
    """Enough messages for the planner's statistics to tell the filters apart (a few thousand over
    ten workspaces, in 50 senders' names, to distinct recipients, delivered, with another
    template), plus one of each kind the reads look for; none of them is due for any sweeper."""
    first = MessageFactory(workspace=workspace, to="jane@example.com", status="delivered")
    other = MessageFactory(workspace=workspace)
    rows = [first] + [
        MessageFactory(
            workspace=workspace, sender=first.sender, template=first.template, template_version=first.template_version
        )
        for _ in range(4)
    ]
    workspaces = [workspace] + [WorkspaceFactory() for _ in range(9)]
    Message.objects.bulk_create(
        Message(
            workspace=workspaces[n % 10],
            sender=other.sender,
            from_address=f"sender{n % 50}@mail.example.com",
            to=f"rcpt-{n}@example.org",
            template=other.template,
            template_version=other.template_version,
            locale="en",
            status="delivered",
        )
        for n in range(3000)
    )
    Message.objects.filter(pk=rows[1].pk).update(status="bounced", bounce_class="expired")
    Message.objects.filter(pk=rows[2].pk).update(status="queued", next_attempt_at=timezone.now() + timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
    return rows


def plans(run, table: str = TABLE) -> list[str]:
    """The plans of the statements `run()` sends that read `table` (SELECTs only)."""
    with CaptureQueriesContext(connection) as captured:
        run()
    found = []
    with connection.cursor() as cursor:
        # The table is partitioned by month: a plan names each partition's index, which is named
        # here by the table's index it belongs to.
        cursor.execute(
            "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relkind = 'I'"
        )
        parents = dict(cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = off")
        for query in captured.captured_queries:
            sql = query["sql"]
            if sql.lstrip().upper().startswith("SELECT") and f"FROM {table}" in sql:
                cursor.execute("EXPLAIN " + sql)
                lines = [row[0] for row in cursor.fetchall()]
                plan = "\n".join(lines)
                for child, parent in parents.items():
                    plan = plan.replace(f" {child} ", f" {parent} ")
                found.append(plan)
    assert found, f"the code read nothing from {table}"
    return found


def assert_served_by(index: str, run, table: str = TABLE) -> None:
    found = plans(run, table)
    assert any(index in plan for plan in found), "\n\n".join(found)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("", "message_page_idx"),
        ("?status=bounced", "message_status_page_idx"),
        ("?recipient=jane@example.com", "message_to_page_idx"),
        ("?from={from_address}", "message_from_page_idx"),
        ("?templateId={template_id}", "message_template_page_idx"),
    ],
)
def test_each_message_list_reads_its_own_index(api, messages, query, index):
    message = messages[0]
    url = "/v1/messages" + query.format(from_address=message.from_address, template_id=message.template_id)
    assert_served_by(index, lambda: api.get(url))


def test_a_page_deep_in_the_list_starts_the_index_scan_at_the_cursor(api, messages, workspace):
    cursor = encode_cursor(messages[3], "messages:" + workspace.id + ":[]")
    found = plans(lambda: api.get(f"/v1/messages?cursor={cursor}"))
    assert any("message_page_idx" in plan and "Index Cond" in plan and "created_at" in plan for plan in found)


def test_the_monthly_quota_fallback_counts_on_an_index_led_by_the_workspace(messages, workspace):
    found = plans(lambda: limits.monthly_quota_used_from_db(workspace_id=workspace.id, now=datetime.now(UTC)))
    assert any("Index Cond: (((workspace_id)::text" in plan for plan in found), found


def test_sender_reputation_reads_only_its_covering_index(messages):
    found = plans(lambda: sender_reputation_stats(sender_id=messages[0].sender_id, since=timezone.now() - timedelta(1)))
    assert any("message_sender_recent_idx" in plan for plan in found), found


def test_an_earlier_expiry_to_the_address_is_found_on_the_recipient_index(messages, workspace):
    assert_served_by(
        "message_to_page_idx",
        lambda: bounce_suppresses(
            workspace_id=workspace.id, address="jane@example.com", bounce_class="expired", message_id="msg_x"
        ),
    )


def test_the_delivery_sweeper_reads_the_due_index(messages):
    assert_served_by("message_delivery_due_idx", delivery_sweep)


def test_the_outbox_sweeper_reads_the_unfinished_index(messages):
    assert_served_by("message_outbox_idx", message_outbox_sweep)


def test_the_pending_metrics_read_the_unfinished_index(messages):
    assert_served_by("message_outbox_idx", lambda: list(pending_messages()))


# -- events, attempts and content (messaging/migrations/0014) --

EVENTS, ATTEMPTS = '"messaging_messageevent"', '"messaging_deliveryattempt"'


def test_events_attempts_and_content_carry_only_the_indexes_their_reads_need(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE tablename = ANY(%s)",
            [["messaging_messageevent", "messaging_deliveryattempt", "messaging_messagecontent"]],
        )
        found = sorted(cursor.fetchall())
    assert found == [
        ("messaging_deliveryattempt", "attempt_in_flight_idx"),
        ("messaging_deliveryattempt", "attempt_message_idx"),
        ("messaging_deliveryattempt", "messaging_deliveryattempt_pkey"),
        ("messaging_messagecontent", "messaging_messagecontent_pkey"),
        ("messaging_messageevent", "event_timeline_idx"),
        ("messaging_messageevent", "event_workspace_idx"),
        ("messaging_messageevent", "messaging_messageevent_pkey"),
    ]


@pytest.fixture
def timeline(messages):
    """Events and attempts for the 3,005 messages, analysed: a few each, as delivery writes them."""
    from messaging.models import DeliveryAttempt, MessageEvent

    rows = list(Message.objects.values_list("pk", "workspace_id", "created_at"))
    MessageEvent.objects.bulk_create(
        MessageEvent(message_id=pk, workspace_id=ws, type=kind, occurred_at=at)
        for pk, ws, at in rows
        for kind in ("accepted", "queued", "sent", "delivered")
    )
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(message_id=pk, state="succeeded", started_at=at) for pk, _, at in rows
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {EVENTS}")
        cursor.execute(f"ANALYZE {ATTEMPTS}")
    return messages


def test_a_messages_timeline_reads_the_timeline_index(api, timeline):
    assert_served_by("event_timeline_idx", lambda: api.get(f"/v1/messages/{timeline[0].pk}/events"), EVENTS)


def test_a_workspaces_events_are_found_on_the_workspace_index(timeline, workspace):
    from messaging.models import MessageEvent

    assert_served_by(
        "event_workspace_idx", lambda: list(MessageEvent.objects.filter(workspace_id=workspace.pk)[:10]), EVENTS
    )


def test_a_batchs_earlier_attempts_are_read_on_the_attempt_index(timeline):
    from messaging.models import DeliveryAttempt

    ids = [m.pk for m in timeline[:3]]
    assert_served_by(
        "attempt_message_idx",
        lambda: list(DeliveryAttempt.objects.filter(message_id__in=ids).values_list("message_id", "recipients")),
        ATTEMPTS,
    )
