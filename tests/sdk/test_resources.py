"""The SDK's templates, domains, senders, suppressions, unsubscribe groups and workspace calls."""

import pytest

from domains.models import Domain as DomainRow
from messaging.models import Suppression as SuppressionRow
from messaging.models import Unsubscribe as UnsubscribeRow
from messaging.models import UnsubscribeGroup as GroupRow
from pufferpost_client import ConflictError, Domain, NotFoundError, Sender, Template, ValidationError
from senders.models import Sender as SenderRow
from templates_app.models import Template as TemplateRow
from tests.domains.factories import publish_as_told
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def test_templates_versions_preview_update_and_archive(account):
    client = account.client(account.live_key)
    created = client.templates.create("Password reset", strict_variables=False)
    assert isinstance(created, Template) and created.slug == "password-reset" and created.latest_version is None
    assert TemplateRow.objects.get(pk=created.id).workspace_id == account.workspace.pk

    v1 = client.templates.create_version(created.id, subject="Reset, {{ name }}", html="<p>{{ link }}</p>")
    v2 = client.templates.create_version(
        "password-reset",
        subject="Reset your password, {{ name }}",
        html="<p>Hi {{ name }}: {{ link }}</p>",
        text="Hi {{ name }}: {{ link }}",
        translations={"de": {"subject": "Passwort zurücksetzen, {{ name }}", "html": "<p>{{ link }}</p>"}},
    )
    assert (v1.version, v2.version) == (1, 2) and v2.template_id == created.id
    assert v2.translations["de"]["subject"] == "Passwort zurücksetzen, {{ name }}"
    assert [v.version for v in client.templates.versions(created.id, limit=1)] == [2, 1]
    assert client.templates.get_version(created.id, 1).subject == "Reset, {{ name }}"
    assert (
        client.templates.get("password-reset").latest_version
        == 2
        == TemplateRow.objects.get(pk=created.id).latest_version
    )

    preview = client.templates.render(created.id, data={"name": "Jane"}, locale="de")
    assert preview.subject == "Passwort zurücksetzen, Jane" and preview.version == 2
    assert preview.missing_variables == ["link"]
    assert client.templates.render(created.id, data={"name": "Jane", "link": "x"}, version=1).subject == "Reset, Jane"

    updated = client.templates.update(created.id, name="Password reset v2", strict_variables=True)
    assert updated.name == "Password reset v2" and updated.strict_variables is True
    with pytest.raises(ValidationError) as caught:
        client.templates.render(created.id, data={"name": "Jane"})
    assert caught.value.code == "template_variables_missing" and caught.value.missing_variables == ["link"]

    ids = [t.id for t in client.templates.list(limit=1)]
    assert sorted(ids) == sorted([created.id, account.template.pk])
    client.templates.archive(created.id)
    assert client.templates.get(created.id).archived is True
    assert TemplateRow.objects.get(pk=created.id).archived_at is not None
    with pytest.raises(ConflictError):
        client.templates.create("Other", slug="order")  # the account's template has it


def test_domains_create_refresh_rotate_list_and_delete(account, dns_server):
    client = account.client(account.live_key)
    created = client.domains.create("mail.acme.test")
    assert isinstance(created, Domain) and created.id.startswith("dom_") and created.verified is False
    assert client.domains.create("MAIL.acme.test ").id == created.id  # idempotent on the domain
    # The worker issues the signing key; the DKIM record then appears in dns_records.
    domain = wait_for(
        lambda: (d := client.domains.get(created.id)) and any(r.purpose == "DKIM" for r in d.dns_records) and d,
        what="the DKIM record in dns_records",
    )
    try:
        publish_as_told(dns_server.zone, [r.raw for r in domain.dns_records])
        refreshed = client.domains.refresh(created.id)
        assert refreshed.verified is True and refreshed.dkim_status == "verified"
        assert refreshed.last_checked_at is not None
        assert DomainRow.objects.get(pk=created.id).dkim_status == "verified"

        rotated = client.domains.rotate_dkim(created.id)
        assert sorted(r.raw.get("state") for r in rotated.dns_records if r.purpose == "DKIM") == ["active", "pending"]
        with pytest.raises(ConflictError) as caught:
            client.domains.rotate_dkim(created.id)
        assert caught.value.code == "dkim_rotation_in_progress"
    finally:
        dns_server.zone.clear()

    second = client.domains.create("news.acme.test")
    pages = list(client.domains.list(limit=1).pages())
    assert len(pages) == 2 and sorted(d.id for p in pages for d in p.data) == sorted([created.id, second.id])
    client.domains.delete(second.id)
    with pytest.raises(NotFoundError) as caught:
        client.domains.get(second.id)
    assert caught.value.code == "domain_not_found"


def test_senders_create_get_list_and_a_duplicate_is_a_conflict(account):
    client = account.client(account.live_key)
    sender = client.senders.create("Alerts@mail.acme.test", display_name="Acme Alerts")
    assert isinstance(sender, Sender) and sender.from_address == "alerts@mail.acme.test"
    assert sender.state == "under_review" and sender.workspace_id == account.workspace.pk
    assert SenderRow.objects.get(pk=sender.id).display_name == "Acme Alerts"
    assert client.senders.get(sender.id).display_name == "Acme Alerts"
    assert sorted(s.id for s in client.senders.list(limit=1)) == sorted([sender.id, account.sender.pk])
    with pytest.raises(ConflictError) as caught:
        client.senders.create("alerts@mail.acme.test")
    assert caught.value.code == "sender_exists"


def test_suppressions_block_a_send_until_deleted(account):
    client = account.client(account.live_key)
    for n in range(3):
        created = client.suppressions.create(f"gone{n}@example.com")
        assert created.reason == "manual" and created.remove
    assert sorted(s.email for s in client.suppressions.list(limit=2)) == [f"gone{n}@example.com" for n in range(3)]
    assert SuppressionRow.objects.filter(workspace=account.workspace).count() == 3

    with pytest.raises(ValidationError) as caught:
        account.client().messages.send(**account.send_body(to="gone1@example.com"))
    assert caught.value.code == "recipient_suppressed"
    client.suppressions.delete("gone1@example.com")
    assert not SuppressionRow.objects.filter(workspace=account.workspace, email="gone1@example.com").exists()
    assert account.client().messages.send(**account.send_body(to="gone1@example.com")).status == "accepted"
    with pytest.raises(NotFoundError):
        client.suppressions.delete("gone1@example.com")


def test_unsubscribe_groups_refuse_an_opted_out_recipient(account):
    client = account.client(account.live_key)
    group = client.unsubscribe_groups.create("Receipts", description="Order mail")
    assert group.id.startswith("grp_") and client.unsubscribe_groups.get(group.id).description == "Order mail"
    assert [g.id for g in client.unsubscribe_groups.list(limit=1)] == [group.id]
    optout = client.unsubscribe_groups.unsubscribe(group.id, "jane@example.com")
    assert (
        optout.group_id == group.id
        and UnsubscribeRow.objects.filter(group_id=group.id, email="jane@example.com").exists()
    )

    with pytest.raises(ValidationError) as caught:
        account.client().messages.send(**account.send_body(to="jane@example.com", unsubscribe_group=group.id))
    assert caught.value.code == "recipient_unsubscribed"
    client.unsubscribe_groups.resubscribe(group.id, "jane@example.com")
    assert not UnsubscribeRow.objects.filter(group_id=group.id).exists()
    sent = account.client().messages.send(**account.send_body(to="jane@example.com", unsubscribe_group=group.id))
    assert account.client().messages.get(sent.id).unsubscribe_group == group.id
    assert GroupRow.objects.get(pk=group.id).workspace_id == account.workspace.pk


def test_the_workspace_read(account):
    workspace = account.client(account.live_key).workspace.get()
    assert (workspace.id, workspace.name, workspace.rate_limit_per_minute) == (
        account.workspace.pk,
        account.workspace.name,
        account.workspace.rate_limit_per_minute,
    )
