import json
import threading
from functools import partial

import pytest
from django.db import connection

from messaging.webhooks.models import WebhookDelivery
from messaging.webhooks.services import webhook_endpoint_create
from pufferpost.errors import ApplicationError
from senders.models import Sender, SenderState, SenderStateChange
from senders.selectors import senders_with_domain_status
from senders.services import (
    IllegalTransition,
    sender_create,
    sender_pause,
    sender_review,
    sender_transition,
    senders_review,
)
from tests.factories import DomainFactory, WorkspaceFactory
from tests.senders.factories import ActiveSenderFactory, PausedSenderFactory, SenderFactory

# Staff and the review command reach these through sender_review, the one entry point.
sender_approve = partial(sender_review, verb="approve")
sender_resume = partial(sender_review, verb="resume")


def test_approve_moves_under_review_to_active_and_records_who_when_why(db, admin_user):
    sender = SenderFactory()
    before = sender.updated_at

    sender_approve(sender=sender, reason="Known customer, DKIM verified.", actor=admin_user)

    sender.refresh_from_db()
    assert sender.state == SenderState.ACTIVE
    assert sender.state_reason == "Known customer, DKIM verified."
    assert sender.updated_at > before
    change = SenderStateChange.objects.get(sender=sender)
    assert (change.from_state, change.to_state) == ("under_review", "active")
    assert change.reason == "Known customer, DKIM verified."
    assert change.actor == admin_user and change.actor_label == admin_user.username
    assert change.created_at is not None


def test_pause_then_resume_writes_a_history_row_each(db):
    sender = ActiveSenderFactory()

    sender_pause(sender=sender, reason="Bounce rate 7%.")
    assert sender.state == SenderState.PAUSED
    sender_resume(sender=sender, reason="List cleaned.", actor_label="command")
    assert sender.state == SenderState.ACTIVE

    history = list(sender.state_changes.values_list("from_state", "to_state", "reason", "actor_label"))
    assert history == [
        ("active", "paused", "Bounce rate 7%.", "system"),
        ("paused", "active", "List cleaned.", "command"),
    ]


@pytest.mark.parametrize(
    ("factory", "service"),
    [
        (ActiveSenderFactory, sender_approve),
        (PausedSenderFactory, sender_approve),
        (SenderFactory, sender_pause),
        (PausedSenderFactory, sender_pause),
        (SenderFactory, sender_resume),
        (ActiveSenderFactory, sender_resume),
    ],
)
def test_illegal_transitions_raise_and_change_nothing(db, factory, service):
    sender = factory()
    state, reason = sender.state, sender.state_reason

    with pytest.raises(IllegalTransition, match=f"cannot move from {state}"):
        service(sender=sender, reason="nope")

    sender.refresh_from_db()
    assert (sender.state, sender.state_reason) == (state, reason)
    assert not SenderStateChange.objects.exists()


@pytest.mark.parametrize(
    ("start", "to_state"),
    [("under_review", "paused"), ("active", "under_review"), ("paused", "under_review"), ("active", "active")],
)
def test_the_state_machine_refuses_everything_not_listed(db, start, to_state):
    sender = SenderFactory(state=start)
    with pytest.raises(IllegalTransition):
        sender_transition(sender=sender, to_state=to_state, reason="x")


def test_the_transition_reads_the_locked_row_not_the_callers_stale_copy(db):
    sender = SenderFactory()
    stale = Sender.objects.get(pk=sender.pk)
    sender_approve(sender=sender, reason="ok")

    with pytest.raises(IllegalTransition):
        sender_approve(sender=stale, reason="again")
    assert SenderStateChange.objects.count() == 1


def test_review_many_changes_the_legal_ones_and_counts_the_skipped(db, admin_user):
    pending = SenderFactory.create_batch(2)
    active = ActiveSenderFactory()

    changed, skipped = senders_review(
        senders=Sender.objects.all(), verb="approve", reason="Batch review.", actor=admin_user
    )

    assert (changed, skipped) == (2, 1)
    assert set(Sender.objects.filter(state="active").values_list("pk", flat=True)) == {s.pk for s in [*pending, active]}
    assert SenderStateChange.objects.filter(actor=admin_user, reason="Batch review.").count() == 2


def test_create_normalises_and_refuses_a_duplicate(db):
    workspace = WorkspaceFactory()
    sender = sender_create(workspace=workspace, from_address=" A@Mail.Acme.com ", display_name=None)
    assert sender.from_address == "a@mail.acme.com" and sender.state == "under_review"

    with pytest.raises(ApplicationError) as caught:
        sender_create(workspace=workspace, from_address="a@mail.acme.com")
    assert (caught.value.status_code, caught.value.code) == (409, "sender_exists")


def test_concurrent_creates_of_one_address_make_exactly_one_row(transactional_db):
    workspace = WorkspaceFactory()
    barrier = threading.Barrier(4)
    outcomes = []

    def attempt():
        try:
            barrier.wait()
            sender_create(workspace=workspace, from_address="receipts@mail.acme.com")
            outcomes.append("created")
        except ApplicationError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["created", "sender_exists", "sender_exists", "sender_exists"]
    assert Sender.objects.filter(workspace=workspace).count() == 1


def test_domain_status_comes_from_the_senders_own_workspace(db, django_assert_num_queries):
    workspace, other = WorkspaceFactory(), WorkspaceFactory()
    DomainFactory(workspace=workspace, domain="mail.acme.com", dkim_status="verified")
    DomainFactory(workspace=other, domain="mail.other.com", dkim_status="verified")
    verified = SenderFactory(workspace=workspace, from_address="a@mail.acme.com")
    foreign_domain = SenderFactory(workspace=workspace, from_address="a@mail.other.com")
    no_domain = SenderFactory(workspace=workspace, from_address="a@nowhere.example")

    with django_assert_num_queries(1):
        statuses = {s.pk: s.domain_dkim_status for s in senders_with_domain_status()}

    assert statuses == {verified.pk: "verified", foreign_domain.pk: None, no_domain.pk: None}


def test_a_staff_pause_emits_a_sender_paused_webhook_event_and_a_resume_does_not(db, admin_user):
    sender = ActiveSenderFactory()
    endpoint = webhook_endpoint_create(workspace=sender.workspace, url="https://hooks.example.org/in", events=[])

    sender_pause(sender=sender, reason="Abuse report", actor=admin_user)
    sender_resume(sender=sender, reason="Resolved", actor=admin_user)

    [delivery] = WebhookDelivery.objects.filter(endpoint=endpoint)
    payload = json.loads(delivery.payload)
    assert payload["type"] == "sender.paused"
    assert (payload["sender"]["id"], payload["sender"]["state"], payload["sender"]["state_reason"]) == (
        sender.pk,
        "paused",
        "Abuse report",
    )
