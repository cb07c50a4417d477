"""Reads of senders that need more than `.filter`."""

from django.db.models import CharField, Count, F, Func, OuterRef, QuerySet, Subquery, Value

from domains.models import Domain
from senders.models import Sender, SenderState


def from_domain_expression():
    """The part of `from_address` after its last '@', computed in the database."""
    return Func(F("from_address"), Value("^.*@"), Value(""), function="regexp_replace", output_field=CharField())


def senders_with_domain_status(queryset: QuerySet[Sender] | None = None) -> QuerySet[Sender]:
    """Annotate `domain_dkim_status`: the DKIM state of the from-domain in the sender's own workspace.

    One subquery in the same SELECT, so a list of senders costs one query, not one per row.
    None when the workspace has not added that domain.
    """
    queryset = Sender.objects.all() if queryset is None else queryset
    domains = Domain.objects.filter(workspace_id=OuterRef("workspace_id"), domain=OuterRef("from_domain"))
    return queryset.annotate(from_domain=from_domain_expression()).annotate(
        domain_dkim_status=Subquery(domains.values("dkim_status")[:1])
    )


def sender_state_counts() -> dict[str, int]:
    """How many senders are in each state, every state present (zero included), in one query."""
    counts = dict.fromkeys(SenderState.values, 0)
    counts.update(Sender.objects.order_by().values_list("state").annotate(n=Count("pk")))
    return counts
