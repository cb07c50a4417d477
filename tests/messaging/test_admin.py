import pytest

from tests.messaging.factories import MessageFactory, SuppressionFactory, UnsubscribeFactory


@pytest.mark.parametrize(
    "url",
    [
        "/admin/messaging/message/",
        "/admin/messaging/message/?status__exact=accepted&q={to}",
        "/admin/messaging/message/{id}/change/",
        "/admin/messaging/suppression/",
        "/admin/messaging/unsubscribegroup/",
        "/admin/messaging/unsubscribegroup/{group}/change/",
    ],
)
def test_admin_pages_render(admin_client, workspace, url):
    message = MessageFactory(workspace=workspace)
    SuppressionFactory(workspace=workspace)
    unsubscribe = UnsubscribeFactory(group__workspace=workspace)
    response = admin_client.get(url.format(id=message.id, to=message.to, group=unsubscribe.group_id))
    assert response.status_code == 200


def test_messages_are_read_only_in_the_admin(admin_client, workspace):
    message = MessageFactory(workspace=workspace)
    assert admin_client.get("/admin/messaging/message/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/messaging/message/{message.id}/change/", {"to": "x@example.com"}).status_code == 403
    )
