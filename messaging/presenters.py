"""How messaging's resources are written as JSON: one presenter each, for the API and webhooks alike.

The schema-only serializers in messaging/serializers.py describe these shapes for the OpenAPI
document; tests/messaging/test_presenters.py keeps the two in step.
"""

from urllib.parse import quote

from messaging.feedback.explain import suppression_why
from pufferpost.formats import utc_timestamp


def message_summary(message) -> dict:
    """A message as webhook events carry it: the fields its read view shares, the same values."""
    return {
        "id": message.pk,
        "status": message.status,
        "from": message.from_address,
        "to": message.to,
        "subject": message.subject,
        "template_id": message.template_id,
        "metadata": message.metadata,
        "tags": message.tags,
        "created_at": utc_timestamp(message.created_at),
    }


def message_view(message) -> dict:
    """The snake_case read view of the guide (MessageViewSerializer describes it); attachment content is never included.

    Needs `selectors.message_queryset()`'s annotations (template name and version number).
    """
    return {
        **message_summary(message),
        "reply_to": message.reply_to,
        "cc": message.cc,
        "attachments": [{"filename": a.filename, "content_type": a.content_type} for a in message.attachments.all()],
        "template_name": message.template_name,
        "template_version": message.template_version_number,
        "data": message.data,
        "locale": message.locale,
        "timezone": message.timezone,
        "unsubscribe_group": message.unsubscribe_group_id,
        "test": not message.livemode,
        "updated_at": utc_timestamp(message.updated_at),
    }


def event_view(event) -> dict:
    return {
        "id": event.id,
        "type": event.type,
        "occurred_at": utc_timestamp(event.occurred_at),
        "recorded_at": utc_timestamp(event.recorded_at),
        # What happened, in the platform's words: SMTP code and response, bounce diagnostic,
        # deferral reason, clicked URL. Empty for accepted/queued.
        "detail": event.detail,
    }


def suppression_view(suppression) -> dict:
    return {
        "email": suppression.email,
        "reason": suppression.reason,
        "created_at": utc_timestamp(suppression.created_at),
        # Why, in the receiver's words (a bounce's class, codes, diagnostic), and the message it came from.
        "source_message_id": suppression.source_message_id,
        "detail": suppression.detail,
        "why": suppression_why(suppression),
        "remove": f"DELETE /v1/suppressions/{quote(suppression.email, safe='')}",
    }


def group_view(group) -> dict:
    return {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "created_at": utc_timestamp(group.created_at),
    }


def unsubscribe_view(unsubscribe) -> dict:
    return {
        "email": unsubscribe.email,
        "group_id": unsubscribe.group_id,
        "created_at": utc_timestamp(unsubscribe.created_at),
    }


def content_view(message, content) -> dict:
    """What the recipients got: the rendered parts as delivered; attachments by name and type only."""
    return {
        "id": message.id,
        "subject": content.subject,
        "text": content.text,
        "html": content.html,
        "attachments": [{"filename": a.filename, "content_type": a.content_type} for a in message.attachments.all()],
        "built_at": utc_timestamp(content.built_at),
    }
