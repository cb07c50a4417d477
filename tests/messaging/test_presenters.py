"""One presenter per resource: the API's JSON, the schema that documents it and the webhook's message agree."""

from messaging import selectors
from messaging.presenters import (
    event_view,
    group_view,
    message_summary,
    message_view,
    suppression_view,
    unsubscribe_view,
)
from messaging.serializers import (
    MessageEventViewSerializer,
    MessageViewSerializer,
    SuppressionViewSerializer,
    UnsubscribeGroupViewSerializer,
    UnsubscribeViewSerializer,
)
from tests.messaging.factories import MessageFactory, SuppressionFactory, UnsubscribeFactory


def test_each_presenter_writes_exactly_the_fields_its_schema_documents(db):
    message = MessageFactory(subject="Your order", metadata={"order": "o_9"}, tags=["receipt"])
    message = selectors.message_queryset().get(pk=message.pk)
    event = message.events.create(workspace_id=message.workspace_id, type="accepted", occurred_at=message.created_at)
    unsubscribe = UnsubscribeFactory(group__workspace=message.workspace)
    pairs = [
        (message_view(message), MessageViewSerializer),
        (event_view(event), MessageEventViewSerializer),
        (suppression_view(SuppressionFactory(workspace=message.workspace)), SuppressionViewSerializer),
        (group_view(unsubscribe.group), UnsubscribeGroupViewSerializer),
        (unsubscribe_view(unsubscribe), UnsubscribeViewSerializer),
    ]
    for body, serializer in pairs:
        assert set(body) == set(serializer().fields), serializer.__name__


def test_the_webhooks_message_is_the_read_views_fields_with_the_same_values(db):
    message = selectors.message_queryset().get(pk=MessageFactory(subject="Your order", tags=["receipt"]).pk)
    view, summary = message_view(message), message_summary(message)
    assert summary == {key: view[key] for key in summary}
    assert set(summary) == {"id", "status", "from", "to", "subject", "template_id", "metadata", "tags", "created_at"}
