"""Reads of the messaging app that need more than a `.filter`."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection
from django.db.models import F, Prefetch

from domains.models import DkimStatus, Domain
from messaging import limits
from messaging.models import (
    Message,
    MessageAttachment,
    MessageContent,
    Suppression,
    Unsubscribe,
    UnsubscribeGroup,
)
from senders.models import Sender, SenderState
from templates_app.models import Template, TemplateVersion


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
    # email -> (reason, since): why the address is suppressed, for the refusal's message
    suppressed: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)
    unsubscribed: set[tuple[str, str]] = field(default_factory=set)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _send_context_sql() -> str:
    # One UNION ALL over every table the send checks read, so a single send and a 100-item batch
    # both pay one round trip. Columns: kind, key, a, b, c, d, e (all text).
    return f"""
        SELECT 'template', t.id, t.slug, t.name, v.id::text, v.version::text, t.strict_variables::text
          FROM {_table(Template)} t
          LEFT JOIN LATERAL (
              SELECT tv.id, tv.version FROM {_table(TemplateVersion)} tv
               WHERE tv.template_id = t.id ORDER BY tv.version DESC LIMIT 1
          ) v ON true
         WHERE t.workspace_id = %(ws)s AND t.archived_at IS NULL
           AND (t.id = ANY(%(template_ids)s::text[]) OR t.slug = ANY(%(slugs)s::text[]))
        UNION ALL
        SELECT 'sender', s.from_address, s.id, NULL, NULL, NULL, NULL
          FROM {_table(Sender)} s
         WHERE s.workspace_id = %(ws)s AND s.from_address = ANY(%(froms)s::text[])
           AND (%(test)s OR (s.state = %(active)s AND EXISTS (
               SELECT 1 FROM {_table(Domain)} d
                WHERE d.workspace_id = s.workspace_id AND d.dkim_status = %(verified)s
                  AND d.domain = regexp_replace(s.from_address, '^.*@', '')
           )))
        UNION ALL
        SELECT 'suppressed', x.email, x.reason, x.created_at::text, NULL, NULL, NULL
          FROM {_table(Suppression)} x
         WHERE x.workspace_id = %(ws)s AND x.email = ANY(%(tos)s::text[])
        UNION ALL
        SELECT 'group', g.id, NULL, NULL, NULL, NULL, NULL
          FROM {_table(UnsubscribeGroup)} g
         WHERE g.workspace_id = %(ws)s AND g.id = ANY(%(groups)s::text[])
        UNION ALL
        SELECT 'unsubscribed', u.email, u.group_id, NULL, NULL, NULL, NULL
          FROM {_table(Unsubscribe)} u
          JOIN {_table(UnsubscribeGroup)} ug ON ug.id = u.group_id
         WHERE ug.workspace_id = %(ws)s AND u.group_id = ANY(%(groups)s::text[]) AND u.email = ANY(%(tos)s::text[])
    """


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
    params = {
        "ws": workspace_id,
        "template_ids": sorted(template_ids),
        "slugs": sorted(slugs),
        "froms": sorted(froms),
        "tos": sorted(tos),
        "groups": sorted(groups),
        "active": SenderState.ACTIVE,
        "verified": DkimStatus.VERIFIED,
        "test": not livemode,
    }
    context = SendContext()
    with connection.cursor() as cursor:
        cursor.execute(_send_context_sql(), params)
        rows = cursor.fetchall()
    for kind, key, a, b, c, d, e in rows:
        if kind == "template":
            ref = TemplateRef(key, a, b, int(c) if c else None, int(d) if d else None, e == "true")
            context.templates_by_id[key] = ref
            context.templates_by_slug[a] = ref
        elif kind == "sender":
            context.sender_ids[key] = a
        elif kind == "suppressed":
            context.suppressed[key] = (a, datetime.fromisoformat(b) if b else None)
        elif kind == "group":
            context.groups.add(key)
        else:
            context.unsubscribed.add((a, key))
    return context


def monthly_quota_used_from_db(*, workspace_id: str, now: datetime | None = None) -> int:
    return Message.objects.filter(
        workspace_id=workspace_id, livemode=True, created_at__gte=limits.month_start(now)
    ).count()


def monthly_quota_used(*, workspace_id: str) -> int:
    """Messages accepted this calendar month (UTC): Redis's counter, or the database when Redis lost it."""
    used = limits.quota_used(workspace_id=workspace_id)
    if used is None:
        used = monthly_quota_used_from_db(workspace_id=workspace_id, now=datetime.now(UTC))
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
