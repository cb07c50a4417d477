from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from tests.factories import WorkspaceFactory

CHANGELIST = "/admin/pufferpost/workspace/"


def test_workspaces_are_listed_and_searchable(admin_client):
    acme = WorkspaceFactory(name="Acme Corp")
    WorkspaceFactory(name="Other")

    assert admin_client.get(CHANGELIST).status_code == 200
    assert list(admin_client.get(CHANGELIST, {"q": "acme"}).context["cl"].result_list) == [acme]
    assert list(admin_client.get(CHANGELIST, {"q": acme.id}).context["cl"].result_list) == [acme]


def test_staff_edit_limits_thresholds_and_tracking(admin_client):
    workspace = WorkspaceFactory(name="Acme")
    form = {
        "name": "Acme Inc",
        "default_locale": "de",
        "rate_limit_per_minute": 60,
        "monthly_quota": 5000,
        "max_domains": 10,
        "max_senders": 20,
        "bounce_rate_threshold": "0.0300",
        "complaint_rate_threshold": "0.0020",
        "block_rate_threshold": "0.0800",
        "reputation_min_volume": 50,
        "open_tracking": "on",
        "click_tracking": "on",
        "sending_paused": "on",
        "message_retention_days": 120,
        "content_retention_days": 14,
    }

    response = admin_client.post(f"{CHANGELIST}{workspace.pk}/change/", form)

    assert response.status_code == 302, response.content
    workspace.refresh_from_db()
    assert (workspace.name, workspace.default_locale) == ("Acme Inc", "de")
    assert (workspace.rate_limit_per_minute, workspace.monthly_quota, workspace.reputation_min_volume) == (60, 5000, 50)
    assert str(workspace.bounce_rate_threshold) == "0.0300"
    assert (workspace.max_domains, workspace.max_senders) == (10, 20)
    assert str(workspace.block_rate_threshold) == "0.0800"
    assert workspace.open_tracking and workspace.click_tracking
    assert (workspace.message_retention_days, workspace.content_retention_days) == (120, 14)
    assert workspace.sending_paused is False  # read-only on the form: only the actions pause


def test_pause_with_a_reason_then_resume(admin_client):
    workspace = WorkspaceFactory()
    data = {"action": "pause_sending", ACTION_CHECKBOX_NAME: [workspace.pk]}

    page = admin_client.post(CHANGELIST, {**data, "index": 0})
    assert page.status_code == 200 and b'name="reason"' in page.content
    done = admin_client.post(CHANGELIST, {**data, "confirm": "yes", "reason": "Abuse report #42."})

    assert done.status_code == 302
    workspace.refresh_from_db()
    assert workspace.sending_paused and workspace.sending_paused_reason == "Abuse report #42."
    assert "Paused 1 workspace." in [str(m) for m in admin_client.get(CHANGELIST).context["messages"]]

    admin_client.post(CHANGELIST, {"action": "resume_sending", ACTION_CHECKBOX_NAME: [workspace.pk], "index": 0})
    workspace.refresh_from_db()
    assert not workspace.sending_paused and workspace.sending_paused_reason == ""


def test_pause_without_a_reason_does_nothing(admin_client):
    workspace = WorkspaceFactory()
    response = admin_client.post(
        CHANGELIST, {"action": "pause_sending", ACTION_CHECKBOX_NAME: [workspace.pk], "confirm": "yes", "reason": ""}
    )
    assert response.status_code == 200
    workspace.refresh_from_db()
    assert not workspace.sending_paused


def test_workspaces_cannot_be_deleted_in_the_admin(admin_client):
    workspace = WorkspaceFactory()
    assert admin_client.get(f"{CHANGELIST}{workspace.pk}/delete/").status_code == 403
