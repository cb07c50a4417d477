"""messaging/queries.py's SQL returns exactly what its ORM reading returns."""

import threading
from datetime import UTC, datetime, timedelta

from django.db import connections, transaction
from django.db.models import F, Q

from domains.models import DkimStatus, Domain
from messaging.models import EventRollup, Message, Suppression, Unsubscribe, UnsubscribeGroup
from messaging.queries import (
    ROLLUP_KEY,
    SendContextRow,
    event_rollup_add,
    messages_update_returning,
    send_context_rows,
)
from senders.models import Sender, SenderState
from templates_app.models import Template, TemplateVersion
from tests.factories import DomainFactory, SenderFactory, TemplateFactory, TemplateVersionFactory, WorkspaceFactory
from tests.messaging.factories import MessageFactory, SuppressionFactory, UnsubscribeFactory, UnsubscribeGroupFactory


def _orm_reading(*, workspace_id, template_ids, slugs, froms, tos, groups) -> set[SendContextRow]:
    rows = set()
    empty = dict.fromkeys(SendContextRow._fields)
    templates = Template.objects.filter(workspace_id=workspace_id, archived_at__isnull=True).filter(
        Q(pk__in=template_ids) | Q(slug__in=slugs)
    )
    for template in templates:
        latest = TemplateVersion.objects.filter(template=template).order_by("-version").first()
        rows.add(
            SendContextRow(
                **empty
                | {
                    "kind": "template",
                    "template_id": template.pk,
                    "slug": template.slug,
                    "name": template.name,
                    "version_id": latest and latest.pk,
                    "version": latest and latest.version,
                    "strict_variables": template.strict_variables,
                }
            )
        )
    verified = set(
        Domain.objects.filter(workspace_id=workspace_id, dkim_status=DkimStatus.VERIFIED).values_list(
            "domain", flat=True
        )
    )
    for sender in Sender.objects.filter(workspace_id=workspace_id, from_address__in=froms, state=SenderState.ACTIVE):
        if sender.from_address.rpartition("@")[2] in verified:
            rows.add(
                SendContextRow(
                    **empty | {"kind": "sender", "from_address": sender.from_address, "sender_id": sender.pk}
                )
            )
    for email, reason, since in Suppression.objects.filter(workspace_id=workspace_id, email__in=tos).values_list(
        "email", "reason", "created_at"
    ):
        rows.add(
            SendContextRow(
                **empty | {"kind": "suppressed", "email": email, "suppression_reason": reason, "suppressed_at": since}
            )
        )
    for group_id in UnsubscribeGroup.objects.filter(workspace_id=workspace_id, pk__in=groups).values_list(
        "pk", flat=True
    ):
        rows.add(SendContextRow(**empty | {"kind": "group", "group_id": group_id}))
    for email, group_id in Unsubscribe.objects.filter(
        group__workspace_id=workspace_id, group_id__in=groups, email__in=tos
    ).values_list("email", "group_id"):
        rows.add(SendContextRow(**empty | {"kind": "unsubscribed", "email": email, "group_id": group_id}))
    return rows


def test_the_send_context_read_equals_its_orm_reading(db):
    workspace, other = WorkspaceFactory(), WorkspaceFactory()
    with_versions = TemplateFactory(workspace=workspace, slug="receipt")
    TemplateVersionFactory(template=with_versions, version=1)
    TemplateVersionFactory(template=with_versions, version=2)
    no_version = TemplateFactory(workspace=workspace, slug="draft")
    archived = TemplateFactory(workspace=workspace, slug="old", archived_at="2026-01-01T00:00:00Z")
    foreign = TemplateFactory(workspace=other, slug="receipt")
    DomainFactory(workspace=workspace, domain="mail.acme.com", dkim_status=DkimStatus.VERIFIED)
    DomainFactory(workspace=workspace, domain="pending.acme.com", dkim_status=DkimStatus.PENDING)
    DomainFactory(workspace=other, domain="other.acme.com", dkim_status=DkimStatus.VERIFIED)
    SenderFactory(workspace=workspace, from_address="receipts@mail.acme.com", state=SenderState.ACTIVE)
    SenderFactory(workspace=workspace, from_address="paused@mail.acme.com", state=SenderState.PAUSED)
    SenderFactory(workspace=workspace, from_address="news@pending.acme.com", state=SenderState.ACTIVE)
    SenderFactory(workspace=workspace, from_address="a@other.acme.com", state=SenderState.ACTIVE)
    SuppressionFactory(workspace=workspace, email="blocked@example.com")
    SuppressionFactory(workspace=other, email="jane@example.com")
    group = UnsubscribeGroupFactory(workspace=workspace)
    foreign_group = UnsubscribeGroupFactory(workspace=other)
    UnsubscribeFactory(group=group, email="jane@example.com")
    UnsubscribeFactory(group=foreign_group, email="jane@example.com")

    asked = {
        "template_ids": [with_versions.pk, archived.pk, foreign.pk, "tpl_missing"],
        "slugs": ["draft", "old", "nope"],
        "froms": ["receipts@mail.acme.com", "paused@mail.acme.com", "news@pending.acme.com", "a@other.acme.com"],
        "tos": ["jane@example.com", "blocked@example.com", "bob@example.com"],
        "groups": [group.pk, foreign_group.pk, "grp_missing"],
    }
    for workspace_id in (workspace.pk, other.pk):
        rows = send_context_rows(workspace_id=workspace_id, **asked)
        assert len(rows) == len(set(rows))
        assert set(rows) == _orm_reading(workspace_id=workspace_id, **asked)
    mine = send_context_rows(workspace_id=workspace.pk, **asked)
    templates = {row.template_id: row.version for row in mine if row.kind == "template"}
    assert templates == {with_versions.pk: 2, no_version.pk: None}
    assert {row.from_address for row in mine if row.kind == "sender"} == {"receipts@mail.acme.com"}
    assert {(row.kind, row.email, row.group_id) for row in mine if row.kind in ("suppressed", "unsubscribed")} == {
        ("suppressed", "blocked@example.com", None),
        ("unsubscribed", "jane@example.com", group.pk),
    }


def test_the_conditional_update_returns_exactly_the_rows_its_orm_reading_selects(db):
    workspace, other = WorkspaceFactory(), WorkspaceFactory()
    messages = [MessageFactory(workspace=workspace, status=status) for status in ("accepted", "queued", "sent")]
    messages.append(MessageFactory(workspace=other, status="queued"))
    untouched = MessageFactory(workspace=workspace, status="queued")
    ids = [m.pk for m in messages] + ["msg_missing"]
    sources = ["queued", "accepted"]

    expected = set(Message.objects.filter(pk__in=ids, status__in=sources).values_list("pk", "workspace_id"))
    moved = messages_update_returning(
        message_ids=ids, from_statuses=sources, assignments={"status": "sent", "last_response": "250 ok"}
    )

    assert set(moved) == expected and len(moved) == len(expected) == 3
    assert set(Message.objects.filter(pk__in=[pk for pk, _ in expected]).values_list("status", "last_response")) == {
        ("sent", "250 ok")
    }
    assert Message.objects.get(pk=messages[2].pk).last_response != "250 ok"
    assert Message.objects.get(pk=untouched.pk).status == "queued"


def test_for_a_test_key_every_registered_sender_passes_and_nothing_else_changes(db):
    workspace = WorkspaceFactory()
    DomainFactory(workspace=workspace, domain="pending.acme.com", dkim_status=DkimStatus.PENDING)
    SenderFactory(workspace=workspace, from_address="new@pending.acme.com", state=SenderState.UNDER_REVIEW)
    SenderFactory(workspace=workspace, from_address="paused@nowhere.acme.com", state=SenderState.PAUSED)
    asked = {
        "template_ids": [],
        "slugs": [],
        "froms": ["new@pending.acme.com", "paused@nowhere.acme.com", "unknown@pending.acme.com"],
        "tos": [],
        "groups": [],
    }
    assert send_context_rows(workspace_id=workspace.pk, **asked) == []
    test_rows = send_context_rows(workspace_id=workspace.pk, livemode=False, **asked)
    expected = set(
        Sender.objects.filter(workspace_id=workspace.pk, from_address__in=asked["froms"]).values_list(
            "from_address", "pk"
        )
    )
    assert {(row.from_address, row.sender_id) for row in test_rows} == expected and len(expected) == 2


def _rollup_state(workspace_id) -> dict:
    return {
        tuple(getattr(r, name) for name in ROLLUP_KEY[1:]): r.n
        for r in EventRollup.objects.filter(workspace_id=workspace_id)
    }


def _orm_rollup_add(rows) -> None:
    """The ORM reading of the upsert: create the row at zero if missing, then add (two statements)."""
    for *key, n in rows:
        fields = dict(zip(ROLLUP_KEY, key, strict=True))
        EventRollup.objects.get_or_create(**fields, defaults={"n": 0})
        EventRollup.objects.filter(**fields).update(n=F("n") + n)


def test_the_rollup_upsert_adds_exactly_what_its_orm_reading_adds(db):
    upsert, orm = WorkspaceFactory(), WorkspaceFactory()
    hour = datetime(2026, 12, 1, 15, tzinfo=UTC)
    batches = [
        [("snd_A", "", "", "accepted", 0, 3), ("snd_A", "tpl_T", "", "accepted", 0, 2)],
        [("snd_A", "", "", "accepted", 0, 1), ("snd_A", "", "", "bounced", 1, 1), ("snd_B", "", "grp_G", "sent", 2, 5)],
        [("snd_A", "tpl_T", "", "accepted", 0, 4), ("snd_A", "", "", "bounced", 1, 2)],
    ]
    for batch in batches:
        for workspace, add in ((upsert, event_rollup_add), (orm, _orm_rollup_add)):
            add(
                [
                    (
                        workspace.id,
                        True,
                        hour + timedelta(hours=h),
                        kind,
                        sender,
                        template,
                        group,
                        "block" if h else "",
                        n,
                    )
                    for sender, template, group, kind, h, n in batch
                ]
            )

    assert _rollup_state(upsert.id) == _rollup_state(orm.id)
    assert sum(_rollup_state(upsert.id).values()) == 18
    event_rollup_add([])  # nothing to add: no statement, no error


def test_concurrent_upserts_into_one_bucket_lose_no_count(transactional_db):
    workspace = WorkspaceFactory()
    hour = datetime(2026, 12, 1, 15, tzinfo=UTC)
    key = (workspace.id, True, hour, "delivered", "snd_A", "", "", "")
    other = (workspace.id, True, hour, "sent", "snd_A", "", "", "")
    start = threading.Barrier(4)

    def worker(rows):
        try:
            start.wait()
            for _ in range(50):
                with transaction.atomic():
                    event_rollup_add(rows)
        finally:
            connections.close_all()

    # Four transactions at a time on the same rows, two of them listing the rows in the other order.
    threads = [
        threading.Thread(target=worker, args=(rows,))
        for rows in ([(*key, 1), (*other, 2)], [(*other, 2), (*key, 1)]) * 2
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert _rollup_state(workspace.id) == {key[1:]: 200, other[1:]: 400}
