"""The console as an operator runs it: their name on it, lists readable at 1280 px, quotas and
thresholds in the units people type, and API keys filtered by whether they still work."""

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.utils import timezone

from pufferpost.models import ApiKey
from tests.factories import DomainFactory, WorkspaceFactory
from tests.helpers import CONSOLE_CHANGELISTS
from tests.messaging.factories import MessageFactory, SuppressionFactory, UnsubscribeGroupFactory
from tests.senders.factories import SenderFactory

WORKSPACES = "/admin/pufferpost/workspace/"
KEYS = "/admin/pufferpost/apikey/"
ROOT = Path(__file__).resolve().parents[2]
LONG_NAME = "Acme International Holdings, Logistics and Parcel Services Division (EMEA)"


@override_settings(PUFFERPOST_CONSOLE_NAME="Acme Mail Console")
def test_the_console_carries_the_operators_name_on_login_index_and_every_page(client, admin_client):
    login = client.get("/admin/login/")
    assert login.status_code == 200
    html = login.content.decode()
    assert re.search(r"<title>Log in \| Acme Mail Console</title>", html)
    assert '<div id="site-name"><a href="/admin/">Acme Mail Console</a></div>' in html
    assert "Django administration" not in html and "Django site admin" not in html

    index = admin_client.get("/admin/").content.decode()
    assert "<title>Acme Mail Console: workspaces, senders and mail | Acme Mail Console</title>" in index
    assert "Acme Mail Console</a></div>" in index

    changelist = admin_client.get(WORKSPACES).content.decode()
    assert "| Acme Mail Console</title>" in changelist and "Django" not in changelist.split("</title>")[0]


def test_the_default_name_is_pufferposts(client):
    assert '<a href="/admin/">PufferPost console</a>' in client.get("/admin/login/").content.decode()


def test_a_console_name_that_cannot_be_shown_stops_the_start():
    env = {**os.environ, "PUFFERPOST_CONSOLE_NAME": "x" * 81, "DJANGO_SETTINGS_MODULE": "pufferpost.settings"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True)
    assert result.returncode != 0
    assert b"PUFFERPOST_CONSOLE_NAME must be 1 to 80 printable characters." in result.stderr


def cells(html: str, column: str) -> list[str]:
    return re.findall(rf'<td class="field-{column}[^"]*">(.*?)</td>', html, flags=re.S)


def test_long_values_are_cut_to_their_column_with_the_whole_value_in_the_title(admin_client):
    workspace = WorkspaceFactory(name=LONG_NAME)
    sender = SenderFactory(workspace=workspace, from_address="very.long.local.part.for.receipts@mail.acme.example")
    MessageFactory(workspace=workspace, sender=sender, to="a.rather.long.recipient.address@customers.example")

    html = admin_client.get("/admin/messaging/message/").content.decode()
    [to] = cells(html, "to")
    assert to == (
        '<span class="pp-cut" style="max-width: 20ch" title="a.rather.long.recipient.address@customers.example">'
        "a.rather.long.recipient.address@customers.example</span>"
    )
    [created] = cells(html, "created_at")
    assert re.fullmatch(
        r'<time class="pp-time" datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00" title="[^"]+">'
        r"\d{4}-\d\d-\d\d \d\d:\d\d</time>",
        created,
    )
    # The console's stylesheet keeps every cell on one line and cuts at the width.
    assert '<link rel="stylesheet" href="/static/pufferpost/console.css">' in html

    workspaces = admin_client.get(WORKSPACES).content.decode()
    assert f'title="{LONG_NAME}"' in workspaces and 'style="max-width: 24ch"' in workspaces
    # The first column still links to the row, and sorting by it still works.
    assert re.search(r'<th class="field-name"><a href="/admin/pufferpost/workspace/wsp_[^"]+/change/">', workspaces)
    assert admin_client.get(WORKSPACES, {"o": "1"}).status_code == 200


@pytest.mark.parametrize("url", CONSOLE_CHANGELISTS)
def test_every_changelist_renders_its_text_columns_cut_and_sorts_by_each(admin_client, make_client, url):
    workspace = WorkspaceFactory(name=LONG_NAME)
    make_client(workspace)
    DomainFactory(workspace=workspace, domain="mail.acme.example")
    sender = SenderFactory(workspace=workspace, from_address="receipts@mail.acme.example")
    MessageFactory(workspace=workspace, sender=sender)
    SuppressionFactory(workspace=workspace, email="a.long.suppressed.address@customers.example")
    UnsubscribeGroupFactory(workspace=workspace, name="Product news, offers and the monthly digest")

    response = admin_client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="pp-cut"' in html or 'class="pp-time"' in html
    for index in range(1, len(response.context["cl"].list_display)):
        assert admin_client.get(url, {"o": str(index)}).status_code == 200


def test_quota_and_limit_inputs_are_wide_enough_for_their_values(admin_client):
    workspace = WorkspaceFactory(monthly_quota=2_000_000_000)

    html = admin_client.get(f"{WORKSPACES}{workspace.pk}/change/").content.decode()

    for name in ("rate_limit_per_minute", "monthly_quota", "max_domains", "max_senders", "reputation_min_volume"):
        tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)
        assert 'class="pp-number"' in tag, tag
        assert "vIntegerField" not in tag
    assert 'value="2000000000"' in html
    # Ten digits and the spinner fit in 12ch.
    assert "input.pp-number { width: 12ch;" in (ROOT / "pufferpost/static/pufferpost/console.css").read_text()


def test_thresholds_are_shown_and_edited_as_percentages(admin_client):
    workspace = WorkspaceFactory()  # defaults: 5 % bounce, 0.1 % complaint, 10 % block

    html = admin_client.get(f"{WORKSPACES}{workspace.pk}/change/").content.decode()
    for name, shown in (
        ("bounce_rate_threshold", "5"),
        ("complaint_rate_threshold", "0.1"),
        ("block_rate_threshold", "10"),
    ):
        tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)
        assert f'value="{shown}"' in tag and 'class="pp-percent"' in tag, tag
    assert "Bounce rate threshold (%)" in html
    assert html.count('<span class="pp-unit">%</span>') == 3

    listing = admin_client.get(WORKSPACES).content.decode()
    assert "bounce 5% · complaint 0.1% · block 10%" in listing


@pytest.mark.parametrize(
    ("typed", "stored"), [("2.5", Decimal("0.0250")), ("0.05", Decimal("0.0005")), ("100", Decimal("1.0000"))]
)
def test_a_typed_percentage_is_stored_as_the_fraction_the_auto_pause_compares(admin_client, typed, stored):
    workspace = WorkspaceFactory()
    form = _change_form(workspace, bounce_rate_threshold=typed)

    response = admin_client.post(f"{WORKSPACES}{workspace.pk}/change/", form)

    assert response.status_code == 302, response.content
    workspace.refresh_from_db()
    assert workspace.bounce_rate_threshold == stored


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("101", "Ensure this value is less than or equal to 100."),
        ("-1", "Ensure this value is greater than or equal to 0."),
        ("0.125", "Ensure that there are no more than 2 decimal places."),
        ("five", "Enter a number."),
    ],
)
def test_a_percentage_out_of_range_is_refused_in_percent_terms(admin_client, typed, error):
    workspace = WorkspaceFactory()

    response = admin_client.post(
        f"{WORKSPACES}{workspace.pk}/change/", _change_form(workspace, block_rate_threshold=typed)
    )

    assert response.status_code == 200
    assert error in response.content.decode()
    assert re.search(rf'name="block_rate_threshold"[^>]*value="{re.escape(typed)}"', response.content.decode())
    workspace.refresh_from_db()
    assert workspace.block_rate_threshold == Decimal("0.1000")


def _change_form(workspace, **overrides):
    return {
        "name": workspace.name,
        "default_locale": workspace.default_locale,
        "rate_limit_per_minute": workspace.rate_limit_per_minute,
        "monthly_quota": workspace.monthly_quota,
        "max_domains": workspace.max_domains,
        "max_senders": workspace.max_senders,
        "bounce_rate_threshold": "5",
        "complaint_rate_threshold": "0.1",
        "block_rate_threshold": "10",
        "reputation_min_volume": workspace.reputation_min_volume,
        "message_retention_days": workspace.message_retention_days,
        "content_retention_days": workspace.content_retention_days,
        **overrides,
    }


def test_api_keys_are_filtered_as_active_or_revoked(admin_client, make_client, workspace):
    active = ApiKey.objects.get(key_hash=ApiKey.hash(make_client(workspace).raw_key))
    revoked = ApiKey.objects.get(key_hash=ApiKey.hash(make_client(workspace).raw_key))
    revoked.revoked_at = timezone.now()
    revoked.save(update_fields=["revoked_at"])

    everything = admin_client.get(KEYS)
    html = everything.content.decode()
    assert set(everything.context["cl"].result_list) == {active, revoked}
    assert '<a href="?status=active">Active</a>' in html and '<a href="?status=revoked">Revoked</a>' in html
    assert list(admin_client.get(KEYS, {"status": "active"}).context["cl"].result_list) == [active]
    only_revoked = admin_client.get(KEYS, {"status": "revoked"})
    assert list(only_revoked.context["cl"].result_list) == [revoked]
    [status] = cells(only_revoked.content.decode(), "status")
    assert re.fullmatch(r'<span title="Revoked at \d{4}-\d\d-\d\dT[\d:]+\+00:00">Revoked</span>', status)


def test_a_staff_user_without_key_permissions_does_not_see_the_keys(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="senders"))
    client.force_login(user)

    assert client.get(KEYS).status_code == 403
