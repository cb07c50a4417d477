"""Reads of the messaging app that need more than a `.filter`."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import F, Prefetch

from messaging import limits, queries
from messaging.models import Message, MessageAttachment


@dataclass(frozen=True)
class TemplateRef:
    id: str
    slug: str
    name: str
    version_pk: int | None
    version: int | None


@dataclass
class SendContext:
    """Everything the send checks need about a set of sends, loaded in one query."""

    templates_by_id: dict[str, TemplateRef] = field(default_factory=dict)
    templates_by_slug: dict[str, TemplateRef] = field(default_factory=dict)
    sender_ids: dict[str, str] = field(default_factory=dict)
    suppressed: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    unsubscribed: set[tuple[str, str]] = field(default_factory=set)


def send_context(*, workspace_id: str, sends: list[dict]) -> SendContext:
    """Templates (with their latest version), gated senders, suppressions and group opt-outs for `sends`.

    A sender passes the gate when it is `active` and its exact from-domain is a DKIM-verified
    domain of the same workspace. Archived templates are invisible, like missing ones.
    """
    template_ids, slugs, froms, tos, groups = set(), set(), set(), set(), set()
    for send in sends:
        if send.get("templateId"):
            template_ids.add(send["templateId"])
        elif send.get("template"):
            slugs.add(send["template"])
        froms.add(send["from"])
        tos.add(send["to"])
        if send.get("unsubscribeGroup"):
            groups.add(send["unsubscribeGroup"])
    context = SendContext()
    rows = queries.send_context_rows(
        workspace_id=workspace_id, template_ids=template_ids, slugs=slugs, froms=froms, tos=tos, groups=groups
    )
    for row in rows:
        if row.kind == "template":
            ref = TemplateRef(row.template_id, row.slug, row.name, row.version_id, row.version)
            context.templates_by_id[row.template_id] = ref
            context.templates_by_slug[row.slug] = ref
        elif row.kind == "sender":
            context.sender_ids[row.from_address] = row.sender_id
        elif row.kind == "suppressed":
            context.suppressed.add(row.email)
        elif row.kind == "group":
            context.groups.add(row.group_id)
        else:
            context.unsubscribed.add((row.group_id, row.email))
    return context


def monthly_quota_used(*, workspace_id: str) -> int:
    """Messages accepted this calendar month (UTC): Redis's counter, or the database when Redis lost it."""
    used = limits.quota_used(workspace_id=workspace_id)
    if used is None:
        used = limits.monthly_quota_used_from_db(workspace_id=workspace_id, now=datetime.now(UTC))
    return used


def message_queryset():
    """Messages with what the read view shows: template name and version number, attachment names only."""
    return (
        Message.objects.annotate(
            template_name=F("template__name"), template_version_number=F("template_version__version")
        )
        .defer("last_response")
        .prefetch_related(
            Prefetch(
                "attachments",
                queryset=MessageAttachment.objects.only("id", "message_id", "position", "filename", "content_type"),
            )
        )
    )
