"""Reads of the messaging app that need more than a `.filter`."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import F, Prefetch

from domains.models import Domain
from messaging import limits, queries
from messaging.models import Message, MessageAttachment, MessageContent
from senders.models import Sender, SenderState


@dataclass(frozen=True)
class TemplateRef:
    id: str
    slug: str
    name: str
    version_pk: int | None
    version: int | None
    strict_variables: bool = False


@dataclass
class SendContext:
    """Everything the send checks need about a set of sends, loaded in one query."""

    templates_by_id: dict[str, TemplateRef] = field(default_factory=dict)
    templates_by_slug: dict[str, TemplateRef] = field(default_factory=dict)
    sender_ids: dict[str, str] = field(default_factory=dict)
    # email -> (reason, since): why the address is suppressed, for the refusal's detail
    suppressed: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)
    unsubscribed: set[tuple[str, str]] = field(default_factory=set)


def send_context(*, workspace_id: str, sends: list[dict], livemode: bool = True) -> SendContext:
    """Templates (with their latest version), gated senders, suppressions and group opt-outs for `sends`.

    A sender passes the gate when it is `active` and its exact from-domain is a DKIM-verified
    domain of the same workspace. Archived templates are invisible, like missing ones.
    For a test key (`livemode=False`) any registered sender of the workspace passes: test mail
    never leaves, so a developer can integrate while the sender is in review or the DNS is not
    published yet (it is DKIM-signed when its domain already has a key).
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
        workspace_id=workspace_id,
        template_ids=template_ids,
        slugs=slugs,
        froms=froms,
        tos=tos,
        groups=groups,
        livemode=livemode,
    )
    for row in rows:
        if row.kind == "template":
            ref = TemplateRef(
                row.template_id, row.slug, row.name, row.version_id, row.version, bool(row.strict_variables)
            )
            context.templates_by_id[row.template_id] = ref
            context.templates_by_slug[row.slug] = ref
        elif row.kind == "sender":
            context.sender_ids[row.from_address] = row.sender_id
        elif row.kind == "suppressed":
            context.suppressed[row.email] = (row.suppression_reason, row.suppressed_at)
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


def message_content(*, message_id: str) -> MessageContent | None:
    """What delivery last built for the message, or None before its first attempt built it."""
    return MessageContent.objects.filter(message_id=message_id).first()


def sender_unavailable_reason(*, workspace_id: str, from_address: str) -> tuple[str, str]:
    """Why `from_address` cannot send: (reason code, a sentence saying what to do). Two small
    queries, run only when a send was refused."""
    domain_name = from_address.rpartition("@")[2]
    sender = (
        Sender.objects.filter(workspace_id=workspace_id, from_address=from_address)
        .only("id", "state", "state_reason")
        .first()
    )
    if sender is None:
        return "sender_not_registered", "No sender is registered for this address: register it with POST /v1/senders."
    if sender.state == SenderState.UNDER_REVIEW:
        return "sender_under_review", f"The sender {sender.id} is under review; it can send once it is approved."
    if sender.state == SenderState.PAUSED:
        why = sender.state_reason.strip().rstrip(".")
        return "sender_paused", f"The sender {sender.id} is paused" + (f": {why}." if why else ".")
    domain = Domain.objects.filter(workspace_id=workspace_id, domain=domain_name).only("id", "dkim_status").first()
    if domain is None:
        return (
            "domain_not_registered",
            f"The domain {domain_name} is not a sending domain of this workspace: add it with POST /v1/domains.",
        )
    return (
        "domain_not_verified",
        f"The domain {domain_name} is not DKIM-verified (dkim_status: {domain.dkim_status}): publish its DKIM "
        f"record, then POST /v1/domains/{domain.id}/refresh.",
    )
