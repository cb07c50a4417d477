"""messaging/queries.py's SQL returns exactly what its ORM reading returns."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.forms.models import model_to_dict
from psycopg.errors import QueryCanceled

from domains.models import DkimStatus, Domain
from messaging.models import (
    AttemptState,
    DeliveryAttempt,
    EventRollup,
    Message,
    MessageContent,
    MessageEvent,
    MessageStatus,
    Suppression,
    Unsubscribe,
    UnsubscribeGroup,
)
from messaging.queries import (
    ROLLUP_KEY,
    SendContextRow,
    attempt_commit_in_flight,
    attempts_finish,
    default_partition_rows_delete,
    event_rollup_add,
    event_rollup_lock,
    message_contents_upsert,
    message_events_insert,
    messages_bookkeep,
    messages_bookkeep_transition_returning,
    messages_claim_due_returning,
    messages_update_returning,
    send_context_rows,
    statement_timeout_local,
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


def test_the_rollup_lock_holds_off_writes_until_its_transaction_ends_and_lets_reads_through(transactional_db):
    """No ORM reading (the ORM takes no table locks): the test holds it to its guarantee instead."""
    workspace = WorkspaceFactory()
    key = (workspace.id, True, datetime(2026, 12, 1, 15, tzinfo=UTC), "delivered", "", "", "", "")
    event_rollup_add([(*key, 1)])
    outcome = {}

    def record(name):
        try:
            with transaction.atomic():
                statement_timeout_local(milliseconds=300)
                outcome[f"{name} read"] = EventRollup.objects.filter(workspace_id=workspace.id).count()
                try:
                    with transaction.atomic():
                        event_rollup_add([(*key, 1)])
                    outcome[f"{name} write"] = "added"
                except (OperationalError, QueryCanceled) as exc:
                    # On a fresh connection the add first PREPAREs on psycopg's connection (not
                    # Django's wrapper), and parse analysis already takes the table lock: it is the
                    # PREPARE that waits, and its error comes unwrapped.
                    outcome[f"{name} write"] = "held off" if "statement timeout" in str(exc) else str(exc)
        finally:
            connections.close_all()

    def in_another_connection(name):
        thread = threading.Thread(target=record, args=(name,))
        thread.start()
        thread.join(timeout=30)

    with transaction.atomic():
        event_rollup_lock()
        in_another_connection("locked")
    in_another_connection("after")
    assert outcome == {"locked read": 1, "locked write": "held off", "after read": 1, "after write": "added"}
    assert _rollup_state(workspace.id) == {key[1:]: 2}


def _delivery_state(message_ids) -> dict:
    """Each message's delivery columns and its attempts' columns (without ids), by message id."""
    attempts = {}
    for a in DeliveryAttempt.objects.filter(message_id__in=message_ids).order_by("started_at", "id"):
        attempts.setdefault(a.message_id, []).append(
            (a.state, a.started_at, a.finished_at, a.mx_host, a.response, a.recipients)
        )
    return {
        m.pk: (
            m.status,
            m.claimed_at,
            m.next_attempt_at,
            m.attempts,
            m.subject,
            m.last_response,
            m.updated_at,
            attempts.get(m.pk, []),
        )
        for m in Message.objects.filter(pk__in=message_ids)
    }


def _claim_due_world(workspace, now):
    """One message per case a due claim must tell apart; returns their ids, the case's name first."""
    past, later = now - timedelta(seconds=5), now + timedelta(minutes=5)
    cases = {
        "due": {"status": "queued", "next_attempt_at": past},
        "due_now": {"status": "queued", "next_attempt_at": now},
        "not_due": {"status": "queued", "next_attempt_at": later},
        "no_due_time": {"status": "queued", "next_attempt_at": None},
        "in_flight": {"status": "queued", "next_attempt_at": past},
        "deferred_before": {"status": "queued", "next_attempt_at": past},
        "accepted": {"status": "accepted", "next_attempt_at": past},
        "sent": {"status": "sent", "next_attempt_at": past},
    }
    ids = {name: MessageFactory(workspace=workspace, **fields).pk for name, fields in cases.items()}
    DeliveryAttempt.objects.create(message_id=ids["in_flight"], state=AttemptState.IN_FLIGHT, started_at=past)
    DeliveryAttempt.objects.create(message_id=ids["deferred_before"], state=AttemptState.DEFERRED, started_at=past)
    return ids


def test_the_due_claim_takes_exactly_the_rows_its_orm_reading_selects(db):
    now = datetime(2026, 12, 1, 15, tzinfo=UTC)
    until = now + timedelta(minutes=2)
    sql_ids = _claim_due_world(WorkspaceFactory(), now)
    orm_ids = _claim_due_world(WorkspaceFactory(), now)

    claimed = messages_claim_due_returning(message_ids=[*sql_ids.values(), "msg_missing"], now=now, until=until)
    due = Message.objects.filter(
        pk__in=orm_ids.values(), status=MessageStatus.QUEUED, next_attempt_at__lte=now
    ).exclude(Exists(DeliveryAttempt.objects.filter(message=OuterRef("pk"), state=AttemptState.IN_FLIGHT)))
    orm_claimed = list(due.values_list("pk", flat=True))
    Message.objects.filter(pk__in=orm_claimed).update(claimed_at=now, next_attempt_at=until)

    names = {pk: name for name, pk in sql_ids.items()}
    orm_names = {pk: name for name, pk in orm_ids.items()}
    assert len(claimed) == len(set(claimed))
    assert {names[pk] for pk in claimed} == {"due", "due_now", "deferred_before"}
    assert {orm_names[pk] for pk in orm_claimed} == {"due", "due_now", "deferred_before"}

    def by_name(ids, names):
        return {names[pk]: state[:-2] for pk, state in _delivery_state(ids.values()).items()}

    assert by_name(sql_ids, names) == by_name(orm_ids, orm_names)
    # A second claim finds the claimed ones leased: nothing is claimed twice.
    assert messages_claim_due_returning(message_ids=list(sql_ids.values()), now=now, until=until) == []


def _commit_in_flight_orm(*, message_id, token, subject, now, until, recipients):
    """The ORM reading of the commit point: a conditional update, then the insert, in one transaction."""
    with transaction.atomic():
        moved = Message.objects.filter(pk=message_id, status=MessageStatus.QUEUED, claimed_at=token).update(
            next_attempt_at=until, subject=subject, updated_at=now
        )
        if not moved:
            return None
        return DeliveryAttempt.objects.create(
            message_id=message_id,
            state=AttemptState.IN_FLIGHT,
            started_at=now,
            recipients={r: {"outcome": AttemptState.IN_FLIGHT.value} for r in recipients},
        ).pk


def test_the_commit_point_writes_what_its_orm_reading_writes(db):
    token = datetime(2026, 12, 1, 15, tzinfo=UTC)
    now, until = token + timedelta(seconds=3), token + timedelta(minutes=2)
    cases = {
        "ours": {"status": "queued", "claimed_at": token},
        "claimed_since": {"status": "queued", "claimed_at": token + timedelta(seconds=1)},
        "never_claimed": {"status": "queued", "claimed_at": None},
        "no_longer_queued": {"status": "sent", "claimed_at": token},
    }
    outcomes = {}
    for commit in (attempt_commit_in_flight, _commit_in_flight_orm):
        workspace = WorkspaceFactory()
        for name, fields in cases.items():
            pk = MessageFactory(workspace=workspace, next_attempt_at=token, **fields).pk
            created = _delivery_state([pk])[pk]
            attempt_id = commit(
                message_id=pk,
                token=token,
                subject=f"Hello {name}",
                now=now,
                until=until,
                recipients=["Jane@Example.com", "cc@example.com"],
            )
            assert (attempt_id is None) == (name != "ours")
            if attempt_id is not None:
                assert DeliveryAttempt.objects.get(pk=attempt_id).message_id == pk
            state = _delivery_state([pk])[pk]
            if attempt_id is None:
                assert state == created  # a lost claim writes nothing, not even updated_at
            # updated_at: `now` when written, else the row's own creation time.
            outcomes.setdefault(commit, {})[name] = (*state[:6], state[6] == now, state[7])
    assert outcomes[attempt_commit_in_flight] == outcomes[_commit_in_flight_orm]
    ours = outcomes[attempt_commit_in_flight]["ours"]
    assert ours[2] == until and ours[4] == "Hello ours" and ours[6] is True
    assert ours[-1] == [
        (
            "in_flight",
            now,
            None,
            "",
            "",
            {"Jane@Example.com": {"outcome": "in_flight"}, "cc@example.com": {"outcome": "in_flight"}},
        )
    ]
    assert outcomes[attempt_commit_in_flight]["claimed_since"][-1] == []


def test_finishing_attempts_equals_bulk_update(db):
    started = datetime(2026, 12, 1, 15, tzinfo=UTC)
    finished = started + timedelta(seconds=2)
    changes = [
        (AttemptState.SUCCEEDED, "mx1.example.com", "250 2.0.0 ok", {"a@example.com": {"outcome": "delivered"}}),
        (AttemptState.DEFERRED, "mx2.example.com", "451 4.7.1 later", {"b@example.com": {"code": 451}}),
        (AttemptState.FAILED, "", "550 5.1.1 'no such user'", {}),
    ]
    states = []
    for finish in (attempts_finish, lambda rows: DeliveryAttempt.objects.bulk_update(rows, ATTEMPT_FIELDS)):
        workspace = WorkspaceFactory()
        attempts = [
            DeliveryAttempt.objects.create(
                message=MessageFactory(workspace=workspace), state=AttemptState.IN_FLIGHT, started_at=started
            )
            for _ in changes
        ]
        untouched = DeliveryAttempt.objects.create(
            message=MessageFactory(workspace=workspace), state=AttemptState.IN_FLIGHT, started_at=started
        )
        for attempt, (state, mx_host, response, recipients) in zip(attempts, changes, strict=True):
            attempt.state, attempt.finished_at, attempt.mx_host = state, finished, mx_host
            attempt.response, attempt.recipients = response, recipients
        finish(attempts)
        rows = DeliveryAttempt.objects.filter(pk__in=[a.pk for a in [*attempts, untouched]]).order_by("pk")
        states.append([{k: v for k, v in model_to_dict(a).items() if k not in ("id", "message")} for a in rows])
    assert states[0] == states[1]
    assert [row["state"] for row in states[0]] == ["succeeded", "deferred", "failed", "in_flight"]


ATTEMPT_FIELDS = ["state", "finished_at", "mx_host", "response", "recipients"]


def test_the_bookkeeping_equals_bulk_update_over_the_rows_of_its_claim(db):
    token = datetime(2026, 12, 1, 15, tzinfo=UTC)
    fields = ["attempts", "next_attempt_at", "subject", "last_response"]
    states = []

    def orm(messages, *, token):
        ours = set(
            Message.objects.filter(pk__in=[m.pk for m in messages], claimed_at=token).values_list("pk", flat=True)
        )
        Message.objects.bulk_update([m for m in messages if m.pk in ours], fields)

    for bookkeep in (messages_bookkeep, orm):
        workspace = WorkspaceFactory()
        mine = [MessageFactory(workspace=workspace, status="queued", claimed_at=token) for _ in range(2)]
        reclaimed = MessageFactory(workspace=workspace, status="queued", claimed_at=token + timedelta(seconds=1))
        messages = [*mine, reclaimed]
        for n, message in enumerate(messages):
            message.attempts += n + 1
            message.next_attempt_at = None if n == 0 else token + timedelta(minutes=n)
            message.subject, message.last_response = f'Subject "{n}" \\ é', f"25{n} ok"
        bookkeep(messages, token=token)
        states.append([_delivery_state([m.pk])[m.pk][1:6] for m in messages])
    assert states[0] == states[1]
    assert [row[2] for row in states[0]] == [1, 2, 0]  # the reclaimed row is left alone
    assert states[0][1][4] == "251 ok" and states[0][2][4] == ""
    assert states[0][0][1] is None and states[0][1][3] == 'Subject "1" \\ é'  # NULL and quotes go through


def test_bookkeeping_with_the_transition_equals_its_orm_reading(db):
    token = datetime(2026, 12, 1, 15, tzinfo=UTC)
    now = token + timedelta(seconds=3)
    fields = ["attempts", "next_attempt_at", "subject", "last_response"]
    results = []

    def orm(messages, *, token, from_statuses, to_status, now):
        ours = Message.objects.filter(pk__in=[m.pk for m in messages], claimed_at=token, status__in=from_statuses)
        moved = list(ours.values_list("pk", "workspace_id"))
        ids = {pk for pk, _ in moved}
        Message.objects.bulk_update([m for m in messages if m.pk in ids], fields)
        Message.objects.filter(pk__in=ids).update(status=to_status, updated_at=now)
        return moved

    for write in (messages_bookkeep_transition_returning, orm):
        workspace = WorkspaceFactory()
        mine = [MessageFactory(workspace=workspace, status="queued", claimed_at=token) for _ in range(2)]
        reclaimed = MessageFactory(workspace=workspace, status="queued", claimed_at=token + timedelta(seconds=1))
        already_sent = MessageFactory(workspace=workspace, status="sent", claimed_at=token)
        messages = [*mine, reclaimed, already_sent]
        for n, message in enumerate(messages):
            message.attempts += n + 1
            message.next_attempt_at = None if n == 0 else token + timedelta(minutes=n)
            message.subject, message.last_response = f'Subject "{n}" \\ é', f"25{n} ok"
        created = {m.pk: m.updated_at for m in messages}
        moved = write(messages, token=token, from_statuses=["queued"], to_status="delivered", now=now)
        position = {m.pk: n for n, m in enumerate(messages)}
        states = _delivery_state([m.pk for m in messages])
        results.append(
            (
                sorted((position[pk], workspace_id == workspace.pk) for pk, workspace_id in moved),
                [states[m.pk][:6] for m in messages],
                [states[m.pk][6] == (now if position[m.pk] < 2 else created[m.pk]) for m in messages],
            )
        )
    assert results[0] == results[1]
    moved, states, stamped = results[0]
    assert moved == [(0, True), (1, True)]  # neither the reclaimed row nor the one already past `queued`
    assert [row[0] for row in states] == ["delivered", "delivered", "queued", "sent"]
    assert states[1][2:6] == (token + timedelta(minutes=1), 2, 'Subject "1" \\ é', "251 ok")
    assert states[2][3] == 0 and states[3][3] == 0 and stamped == [True] * 4


def test_the_content_upsert_equals_bulk_create_with_update_conflicts(db):
    built = datetime(2026, 12, 1, 15, tzinfo=UTC)
    tricky = 'He said "hi" \\ {braces}, \u00e9\u4e2d\U0001f600,\r\nline\ttab <a href="x?a=1&b=2">'
    states = []

    def orm(contents):
        MessageContent.objects.bulk_create(
            contents,
            update_conflicts=True,
            unique_fields=["message"],
            update_fields=["subject", "text", "html", "built_at"],
        )

    for upsert in (message_contents_upsert, orm):
        workspace = WorkspaceFactory()
        kept, fresh, untouched = (MessageFactory(workspace=workspace) for _ in range(3))
        MessageContent.objects.create(message=kept, subject="old", text="old", html="old", built_at=built)
        MessageContent.objects.create(message=untouched, subject="same", text="same", html="same", built_at=built)
        later = built + timedelta(minutes=5)
        upsert(
            [
                MessageContent(
                    message=kept, subject=f"Re: {tricky}", text=tricky, html=f"<p>{tricky}</p>", built_at=later
                ),
                MessageContent(message=fresh, subject="", text="", html=tricky * 3, built_at=later),
            ]
        )
        rows = {c.message_id: c for c in MessageContent.objects.filter(message__in=[kept, fresh, untouched])}
        states.append(
            [
                (rows[m.pk].subject, rows[m.pk].text, rows[m.pk].html, rows[m.pk].built_at)
                for m in (kept, fresh, untouched)
            ]
        )
    assert states[0] == states[1]
    assert states[0][0][1] == tricky and states[0][2] == ("same", "same", "same", built)
    message_contents_upsert([])  # nothing to write: no statement, no error


def test_the_event_insert_equals_bulk_create(db):
    from django.utils import timezone

    occurred = datetime(2026, 12, 1, 15, 0, 0, 123456, tzinfo=UTC)
    details = [
        {"recipient": "jane@example.com", "code": 250, "response": '2.0.0 "queued" \\ ok', "mx_host": "mx.example"},
        {"mx_host": "mx.example", "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"}},
        {"nested": [1, 2.5, None, True, {"é": "中😀"}], "text": "line\r\nnext\ttab"},
        {},
    ]
    states = []
    for insert in (message_events_insert, MessageEvent.objects.bulk_create):
        workspace = WorkspaceFactory()
        message = MessageFactory(workspace=workspace)
        before = timezone.now()
        events = [
            MessageEvent(message_id=message.pk, workspace_id=workspace.pk, type=t, occurred_at=occurred, detail=d)
            for t, d in zip(("delivered", "sent", "deferred", "queued"), details, strict=True)
        ]
        saved = insert(events)
        assert [e.pk for e in saved] == [e.pk for e in events] and not any(e._state.adding for e in saved)
        rows = MessageEvent.objects.filter(pk__in=[e.pk for e in events])
        by_id = {e.pk: e for e in rows}
        assert all(before <= by_id[e.pk].recorded_at == e.recorded_at <= timezone.now() for e in events)
        states.append([(by_id[e.pk].type, by_id[e.pk].occurred_at, by_id[e.pk].detail) for e in events])
    assert states[0] == states[1]
    assert states[0][2][2] == details[2]
    assert message_events_insert([]) == []
    with pytest.raises(TypeError):  # what JSON cannot hold is refused, as the ORM refuses it
        message_events_insert(
            [
                MessageEvent(
                    message_id=message.pk,
                    workspace_id=workspace.pk,
                    type="sent",
                    occurred_at=occurred,
                    detail={"at": occurred},
                )
            ]
        )


def test_the_statement_timeout_holds_to_the_end_of_the_transaction(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()[0]
    with transaction.atomic():
        statement_timeout_local(milliseconds=2000)
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "2s"
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == before
    with pytest.raises(OperationalError, match="statement timeout"), transaction.atomic():
        statement_timeout_local(milliseconds=50)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")


def test_the_default_partition_delete_equals_its_orm_reading_and_reaches_no_other_partition(db, workspace):
    """Rows of months without a partition of their own sit in the default partition: there the
    DELETE deletes exactly what the ORM's range delete does. A row of the range that sits in a
    month's own partition is left, where the ORM's delete on the parent would take it."""
    from messaging import partitions
    from tests.messaging.conftest import make_sendable
    from tests.messaging.test_retention import JUNE, _message

    partitions.ensure_partitions(now=JUNE, ahead=3)  # June to September 2026 have partitions
    sendable = make_sendable(workspace)
    at_least, below = partitions.bound(partitions.EPOCH), partitions.bound(datetime(2026, 8, 1, tzinfo=UTC))
    deleted = {}
    for delete in ("ours", "orm"):
        in_default = [_message(sendable, datetime(2025, month, 3, tzinfo=UTC)) for month in (2, 5)]
        in_june = _message(sendable, JUNE + timedelta(days=3))
        outside = _message(sendable, datetime(2023, 6, 1, tzinfo=UTC))  # below the range, also in default
        for message in (*in_default, in_june, outside):
            MessageEvent.objects.create(message=message, workspace=workspace, type="opened", occurred_at=JUNE)
        ids = [m.pk for m in (*in_default, in_june, outside)]
        expected = MessageEvent.objects.filter(message__in=in_default).count()  # the factory's and the opens
        if delete == "ours":
            count = default_partition_rows_delete(
                partition="messaging_messageevent_default", key="message_id", at_least=at_least, below=below
            )
        else:
            rows = MessageEvent.objects.filter(message_id__gte=at_least, message_id__lt=below, message_id__in=ids)
            # The ORM reading, kept to the rows the default partition holds (the June row is not there).
            count, _ = rows.exclude(message_id=in_june.pk).delete()
        left = set(MessageEvent.objects.filter(message_id__in=ids).values_list("message_id", flat=True))
        deleted[delete] = (count == expected, left == {in_june.pk, outside.pk})
        MessageEvent.objects.filter(message_id__in=ids).delete()
    assert deleted["ours"] == deleted["orm"] == (True, True)
    # The ORM's delete on the parent, unrestricted, would have reached June's own partition.
    june = _message(sendable, JUNE + timedelta(days=4))
    MessageEvent.objects.create(message=june, workspace=workspace, type="opened", occurred_at=JUNE)
    assert MessageEvent.objects.filter(message_id__gte=at_least, message_id__lt=below, message_id=june.pk).exists()
