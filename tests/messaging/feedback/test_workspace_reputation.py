"""#11: the block rate per workspace (all its senders together), in the admin and with its pause."""

import pytest

from messaging.feedback.reputation import sender_reputation_evaluate, workspace_reputation_summary
from messaging.models import Message
from pufferpost.models import Workspace
from senders.models import Sender
from tests.factories import SenderFactory, TemplateVersionFactory


@pytest.fixture
def senders(workspace):
    return [
        SenderFactory(workspace=workspace, from_address=f"news{i}@mail.acme.test", state="active") for i in range(2)
    ]


def _mail(sender, *, delivered: int, blocked: int = 0, bounced: int = 0):
    version = TemplateVersionFactory(template__workspace=sender.workspace)

    def one(index, status, bounce_class=""):
        return Message(
            workspace=sender.workspace,
            sender=sender,
            from_address=sender.from_address,
            to=f"user{index}@example.org",
            template=version.template,
            template_version=version,
            locale="en",
            status=status,
            bounce_class=bounce_class,
        )

    rows = [one(i, "delivered") for i in range(delivered)]
    rows += [one(i, "bounced", "block") for i in range(blocked)]
    rows += [one(i, "bounced", "hard") for i in range(bounced)]
    Message.objects.bulk_create(rows)


@pytest.mark.parametrize(("blocks", "paused"), [(6, False), (7, True)], ids=["exactly-10%", "just-above-10%"])
def test_blocks_spread_over_senders_too_small_to_judge_pause_the_workspace(workspace, senders, blocks, paused):
    # 60 messages a sender: under reputation_min_volume (100), so no sender is judged alone.
    for sender in senders:
        _mail(sender, delivered=60 - blocks, blocked=blocks)

    assert sender_reputation_evaluate(sender_id=senders[0].pk) is False  # the sender itself stays active
    workspace = Workspace.objects.get(pk=workspace.pk)
    assert workspace.sending_paused is paused
    assert {s.state for s in Sender.objects.filter(workspace=workspace)} == {"active"}
    if paused:
        assert workspace.sending_paused_reason == (
            "Auto-paused: block rate 11.67% across the workspace's senders over the last 120 messages (7 days) "
            "exceeds 10.0%"
        )


def test_the_workspace_block_pause_uses_the_workspace_thresholds_and_volume(workspace, senders):
    workspace.block_rate_threshold = "0.2000"
    workspace.reputation_min_volume = 200
    workspace.save()
    for sender in senders:
        _mail(sender, delivered=40, blocked=20)  # 33 % blocked, but 120 < 200 messages
    sender_reputation_evaluate(sender_id=senders[1].pk)
    assert not Workspace.objects.get(pk=workspace.pk).sending_paused

    _mail(senders[0], delivered=80)  # 200 messages, 40 blocked: exactly 20 %
    sender_reputation_evaluate(sender_id=senders[1].pk)
    assert not Workspace.objects.get(pk=workspace.pk).sending_paused

    _mail(senders[1], delivered=0, blocked=1)
    sender_reputation_evaluate(sender_id=senders[1].pk)
    assert Workspace.objects.get(pk=workspace.pk).sending_paused_reason.endswith("exceeds 20.0%")


def test_hard_bounces_do_not_count_in_the_workspace_block_rate(workspace, senders):
    for sender in senders:
        _mail(sender, delivered=45, bounced=15)  # 25 % bounced, no blocks
    sender_reputation_evaluate(sender_id=senders[0].pk)
    assert not Workspace.objects.get(pk=workspace.pk).sending_paused


def test_the_admin_shows_each_workspaces_rates_against_the_thresholds(admin_client, workspace, senders):
    _mail(senders[0], delivered=50, blocked=3, bounced=2)
    _mail(senders[1], delivered=45)

    page = admin_client.get("/admin/messaging/workspacereputation/").content.decode()
    assert workspace.name in page
    assert "block 3.0% (pauses above 10.0%)" in page
    assert "bounce 2.0% (threshold 5.0%)" in page
    assert "over 100 messages" in page
    assert "block 3.0%" in workspace_reputation_summary(workspace=Workspace.objects.get(pk=workspace.pk))

    detail = admin_client.get(f"/admin/messaging/workspacereputation/{workspace.pk}/change/")
    assert detail.status_code == 200 and "block 3.0% (pauses above 10.0%)" in detail.content.decode()
