"""The staff review queue, driven through the Django admin like a person would."""

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.test import Client

from senders.models import SenderStateChange
from tests.factories import DomainFactory, WorkspaceFactory
from tests.senders.factories import ActiveSenderFactory, PausedSenderFactory, SenderFactory

CHANGELIST = "/admin/senders/sender/"


def run_action(client, action, senders, reason=None, url=CHANGELIST):
    """Pick the action on the changelist, then (if a reason is given) confirm it on the reason page."""
    pks = [s.pk for s in senders]
    first = client.post(url, {"action": action, ACTION_CHECKBOX_NAME: pks, "index": 0})
    if reason is None:
        return first
    return client.post(url, {"action": action, ACTION_CHECKBOX_NAME: pks, "confirm": "yes", "reason": reason})


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_the_queue_lists_an_under_review_sender_with_its_domains_dkim_state(admin_client):
    workspace = WorkspaceFactory(name="Acme")
    DomainFactory(workspace=workspace, domain="mail.acme.com", dkim_status="verified")
    SenderFactory(workspace=workspace, from_address="receipts@mail.acme.com", display_name="Acme Receipts")
    SenderFactory(workspace=workspace, from_address="hello@unverified.example")

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    rows = {s.from_address: s for s in response.context["cl"].result_list}
    assert rows["receipts@mail.acme.com"].domain_dkim_status == "verified"
    assert rows["hello@unverified.example"].domain_dkim_status is None
    html = response.content.decode()
    assert "receipts@mail.acme.com" in html and "Acme Receipts" in html and "Acme" in html
    assert "verified" in html and "no domain" in html


def test_the_domain_of_another_workspace_does_not_count(admin_client):
    DomainFactory(workspace=WorkspaceFactory(), domain="mail.acme.com", dkim_status="verified")
    SenderFactory(workspace=WorkspaceFactory(), from_address="receipts@mail.acme.com")

    response = admin_client.get(CHANGELIST)

    assert [s.domain_dkim_status for s in response.context["cl"].result_list] == [None]


def test_the_queue_puts_under_review_first_then_oldest_first(admin_client):
    active = ActiveSenderFactory()
    old_pending = SenderFactory()
    paused = PausedSenderFactory()
    new_pending = SenderFactory()

    response = admin_client.get(CHANGELIST)

    assert list(response.context["cl"].result_list) == [old_pending, new_pending, active, paused]


def test_the_queue_costs_the_same_queries_for_many_rows(admin_client, django_assert_max_num_queries):
    admin_client.get(CHANGELIST)
    for n in range(20):
        workspace = WorkspaceFactory()
        DomainFactory(workspace=workspace, domain=f"mail{n}.acme.com")
        SenderFactory(workspace=workspace, from_address=f"a@mail{n}.acme.com")
    with django_assert_max_num_queries(10):
        response = admin_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 20


def test_filter_by_state_and_workspace(admin_client):
    acme = WorkspaceFactory(name="Acme")
    pending = SenderFactory(workspace=acme)
    active = ActiveSenderFactory(workspace=acme)
    elsewhere = SenderFactory()

    assert set(admin_client.get(CHANGELIST, {"state__exact": "active"}).context["cl"].result_list) == {active}
    assert set(admin_client.get(CHANGELIST, {"state__exact": "under_review"}).context["cl"].result_list) == {
        pending,
        elsewhere,
    }
    assert set(admin_client.get(CHANGELIST, {"workspace__id__exact": acme.id}).context["cl"].result_list) == {
        pending,
        active,
    }


@pytest.mark.parametrize("term", ["receipts@mail.acme", "Acme Corp", "WORKSPACE_ID"])
def test_search_by_address_workspace_name_or_id(admin_client, term):
    acme = WorkspaceFactory(name="Acme Corp")
    wanted = SenderFactory(workspace=acme, from_address="receipts@mail.acme.com")
    SenderFactory(workspace=WorkspaceFactory(name="Other"), from_address="hello@other.example")

    response = admin_client.get(CHANGELIST, {"q": acme.id if term == "WORKSPACE_ID" else term})

    assert list(response.context["cl"].result_list) == [wanted]


def test_approve_asks_for_a_reason_then_changes_state_and_records_it(admin_client, admin_user):
    sender = SenderFactory(from_address="receipts@mail.acme.com")

    page = run_action(admin_client, "approve", [sender])
    assert page.status_code == 200, page.content
    assert b'name="reason"' in page.content and b"receipts@mail.acme.com" in page.content
    sender.refresh_from_db()
    assert sender.state == "under_review"

    done = run_action(admin_client, "approve", [sender], reason="Known customer; DKIM verified.")

    assert done.status_code == 302
    sender.refresh_from_db()
    assert sender.state == "active"
    assert sender.state_reason == "Known customer; DKIM verified."
    change = SenderStateChange.objects.get(sender=sender)
    assert (change.from_state, change.to_state, change.reason) == ("under_review", "active", sender.state_reason)
    assert change.actor == admin_user and change.actor_label == admin_user.username
    assert "Approved 1 sender." in messages_of(admin_client.get(CHANGELIST))


def test_an_empty_reason_is_refused_and_nothing_changes(admin_client):
    sender = SenderFactory()

    response = run_action(admin_client, "approve", [sender], reason="   ")

    assert response.status_code == 200
    assert b"This field is required." in response.content
    sender.refresh_from_db()
    assert sender.state == "under_review"
    assert not SenderStateChange.objects.exists()


def test_pause_and_resume_through_the_admin(admin_client):
    sender = ActiveSenderFactory()

    assert run_action(admin_client, "pause", [sender], reason="Complaints from a spam trap.").status_code == 302
    sender.refresh_from_db()
    assert (sender.state, sender.state_reason) == ("paused", "Complaints from a spam trap.")

    assert run_action(admin_client, "resume", [sender], reason="Customer fixed the list.").status_code == 302
    sender.refresh_from_db()
    assert (sender.state, sender.state_reason) == ("active", "Customer fixed the list.")
    assert list(sender.state_changes.values_list("to_state", flat=True)) == ["paused", "active"]


def test_an_action_skips_senders_whose_state_does_not_allow_it_and_says_so(admin_client):
    pending, active = SenderFactory(), ActiveSenderFactory()

    run_action(admin_client, "approve", [pending, active], reason="Batch.")

    pending.refresh_from_db()
    assert pending.state == "active"
    messages = messages_of(admin_client.get(CHANGELIST))
    assert "Approved 1 sender." in messages
    assert "Skipped 1 sender: not under review." in messages
    assert SenderStateChange.objects.count() == 1


def test_resume_does_not_approve_a_sender_under_review(admin_client):
    sender = SenderFactory()
    run_action(admin_client, "resume", [sender], reason="Sneaky.")
    sender.refresh_from_db()
    assert sender.state == "under_review"


def test_the_change_page_is_read_only_and_shows_the_history(admin_client):
    sender = SenderFactory()
    run_action(admin_client, "approve", [sender], reason="First approval.")

    page = admin_client.get(f"/admin/senders/sender/{sender.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "First approval." in html and "under_review" in html
    assert 'name="state"' not in html and 'name="_save"' not in html

    admin_client.post(f"/admin/senders/sender/{sender.pk}/change/", {"state": "paused"})
    sender.refresh_from_db()
    assert sender.state == "active"


def test_senders_cannot_be_added_or_deleted_in_the_admin(admin_client):
    sender = SenderFactory()
    assert admin_client.get("/admin/senders/sender/add/").status_code == 403
    assert admin_client.get(f"/admin/senders/sender/{sender.pk}/delete/").status_code == 403


def test_staff_without_the_sender_permission_cannot_review(client, django_user_model):
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(staff)
    sender = SenderFactory()
    assert client.get(CHANGELIST).status_code == 403
    assert run_action(client, "approve", [sender], reason="nope").status_code == 403
    sender.refresh_from_db()
    assert sender.state == "under_review"


def test_an_api_key_cannot_reach_the_admin(api, db):
    for url in ("/admin/", CHANGELIST, "/admin/pufferpost/apikey/"):
        response = api.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    sender = SenderFactory()
    assert run_action(api, "approve", [sender], reason="via key").status_code == 302
    sender.refresh_from_db()
    assert sender.state == "under_review"


def test_the_queue_shows_counts_per_state_as_filter_links(admin_client):
    SenderFactory.create_batch(3)
    ActiveSenderFactory.create_batch(2)
    PausedSenderFactory()

    response = admin_client.get(CHANGELIST, {"state__exact": "under_review"})

    counts = {
        item["state"]: (item["label"], item["count"], item["current"]) for item in response.context["state_counts"]
    }
    assert counts == {
        "under_review": ("Under review", 3, True),
        "active": ("Active", 2, False),
        "paused": ("Paused", 1, False),
    }
    assert response.context["state_total"] == 6
    html = response.content.decode()
    assert 'href="?state__exact=under_review"' in html and 'href="?state__exact=paused"' in html
    assert 'Under review: <span class="pp-count">3</span>' in html
    assert 'Paused: <span class="pp-count">1</span>' in html


def test_counts_show_zero_for_an_empty_state(admin_client):
    SenderFactory()

    response = admin_client.get(CHANGELIST)

    assert [(item["state"], item["count"]) for item in response.context["state_counts"]] == [
        ("under_review", 1),
        ("active", 0),
        ("paused", 0),
    ]


@pytest.mark.parametrize(
    ("value", "wanted"),
    [
        ("verified", "a@verified.example"),
        ("pending", "b@pending.example"),
        ("failed", "c@failed.example"),
        ("none", "d@nowhere.example"),
    ],
)
def test_filter_by_the_from_domains_verification_state(admin_client, value, wanted):
    workspace = WorkspaceFactory()
    for status in ("verified", "pending", "failed"):
        DomainFactory(workspace=workspace, domain=f"{status}.example", dkim_status=status)
    for address in ("a@verified.example", "b@pending.example", "c@failed.example", "d@nowhere.example"):
        SenderFactory(workspace=workspace, from_address=address)

    response = admin_client.get(CHANGELIST, {"domain_verification": value})

    assert [s.from_address for s in response.context["cl"].result_list] == [wanted]


def test_the_domain_state_and_sender_state_are_badges(admin_client):
    workspace = WorkspaceFactory()
    DomainFactory(workspace=workspace, domain="failed.example", dkim_status="failed")
    SenderFactory(workspace=workspace, from_address="a@failed.example")
    ActiveSenderFactory(workspace=workspace, from_address="b@nowhere.example")

    html = admin_client.get(CHANGELIST).content.decode()

    assert '<span class="pp-badge pp-badge-failed">failed</span>' in html
    assert '<span class="pp-badge pp-badge-none">no domain</span>' in html
    assert '<span class="pp-badge pp-badge-under_review">Under review</span>' in html
    assert '<span class="pp-badge pp-badge-active">Active</span>' in html
    assert "senders/admin.css" in html


def test_the_queue_has_a_date_hierarchy_on_created(admin_client):
    sender = SenderFactory()
    created = sender.created_at

    response = admin_client.get(
        CHANGELIST,
        {"created_at__year": created.year, "created_at__month": created.month, "created_at__day": created.day},
    )

    assert list(response.context["cl"].result_list) == [sender]
    assert admin_client.get(CHANGELIST, {"created_at__year": created.year - 1}).context["cl"].result_list.count() == 0


def test_a_filtered_queue_costs_the_same_queries_for_many_rows(admin_client, django_assert_max_num_queries):
    admin_client.get(CHANGELIST)
    for n in range(20):
        workspace = WorkspaceFactory()
        DomainFactory(workspace=workspace, domain=f"mail{n}.acme.com", dkim_status="verified")
        sender = SenderFactory(workspace=workspace, from_address=f"a@mail{n}.acme.com")
    params = {
        "state__exact": "under_review",
        "domain_verification": "verified",
        "created_at__year": sender.created_at.year,
    }
    with django_assert_max_num_queries(10):
        response = admin_client.get(CHANGELIST, params)
    assert len(response.context["cl"].result_list) == 20


def review_url(sender):
    return f"{CHANGELIST}{sender.pk}/review/"


@pytest.mark.parametrize(
    ("factory", "verb", "done", "to_state"),
    [
        (SenderFactory, "approve", "Approved", "active"),
        (ActiveSenderFactory, "pause", "Paused", "paused"),
        (PausedSenderFactory, "resume", "Resumed", "active"),
    ],
)
def test_the_sender_page_reviews_the_sender_with_a_reason(admin_client, admin_user, factory, verb, done, to_state):
    sender = factory()
    page = admin_client.get(f"{CHANGELIST}{sender.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f'<form method="post" action="{review_url(sender)}" class="pp-review-form">' in html
    assert 'name="csrfmiddlewaretoken"' in html.split('class="pp-review-form"')[1].split("</form>")[0]
    buttons = re.findall(r'<button type="submit" name="verb" value="(\w+)"', html)
    assert buttons == [verb]  # only the verb the current state allows

    response = admin_client.post(review_url(sender), {"verb": verb, "reason": "Checked by hand."}, follow=True)

    assert response.redirect_chain == [(f"{CHANGELIST}{sender.pk}/change/", 302)]
    assert messages_of(response) == [f"{done} {sender.from_address}."]
    sender.refresh_from_db()
    assert (sender.state, sender.state_reason) == (to_state, "Checked by hand.")
    change = SenderStateChange.objects.filter(sender=sender).latest("created_at")
    assert (change.to_state, change.actor, change.reason) == (to_state, admin_user, "Checked by hand.")


def test_a_review_the_state_does_not_allow_changes_nothing_and_says_why(admin_client):
    sender = SenderFactory()

    response = admin_client.post(review_url(sender), {"verb": "resume", "reason": "Oops."}, follow=True)

    assert messages_of(response) == [f"Cannot resume {sender.from_address}: it is under review."]
    sender.refresh_from_db()
    assert sender.state == "under_review" and not SenderStateChange.objects.filter(sender=sender).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"verb": "approve", "reason": "  "}, "Approve: give a reason (up to 500 characters)."),
        ({"verb": "approve", "reason": "x" * 501}, "Approve: give a reason (up to 500 characters)."),
        ({"verb": "delete", "reason": "Why not."}, "Choose approve, pause or resume."),
        ({"reason": "No verb."}, "Choose approve, pause or resume."),
    ],
)
def test_a_review_without_a_reason_or_verb_is_refused(admin_client, data, message):
    sender = SenderFactory()

    response = admin_client.post(review_url(sender), data, follow=True)

    assert messages_of(response) == [message]
    sender.refresh_from_db()
    assert sender.state == "under_review"


def test_the_review_endpoint_takes_only_a_csrf_protected_post_from_a_reviewer(client, django_user_model):
    sender = SenderFactory()
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_sender"))
    reviewer = django_user_model.objects.create_user("rev", password="pw", is_staff=True)
    reviewer.user_permissions.add(Permission.objects.get(codename="change_sender"))
    outsider = django_user_model.objects.create_user("outsider", password="pw", is_staff=False)

    assert client.post(review_url(sender), {"verb": "approve", "reason": "x"}).status_code == 302  # to the login
    client.force_login(outsider)
    assert client.post(review_url(sender), {"verb": "approve", "reason": "x"})["Location"].startswith("/admin/login/")
    client.force_login(viewer)
    assert client.post(review_url(sender), {"verb": "approve", "reason": "x"}).status_code == 403
    page = client.get(f"{CHANGELIST}{sender.pk}/change/").content.decode()
    assert 'name="verb"' not in page and "you may only view senders" in page
    client.force_login(reviewer)
    assert client.get(review_url(sender)).status_code == 405

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(reviewer)
    assert csrf_client.post(review_url(sender), {"verb": "approve", "reason": "x"}).status_code == 403
    page = csrf_client.get(f"{CHANGELIST}{sender.pk}/change/")
    token = re.search(
        r'class="pp-review-form">.*?name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode(), re.S
    )
    response = csrf_client.post(review_url(sender), {"verb": "approve", "reason": "x", "csrfmiddlewaretoken": token[1]})
    assert response.status_code == 302
    sender.refresh_from_db()
    assert sender.state == "active"
    assert client.post(f"{CHANGELIST}snd_unknown/review/", {"verb": "approve", "reason": "x"}).status_code == 404
