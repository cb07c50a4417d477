"""The send API, message reads, suppressions and unsubscribe groups. Thin: parse, call, render.

Send precedence (first failing check answers): auth (401/403 missing_scope) → sending paused
(403) → rate limit (429) → body size (413) → Idempotency-Key (422 too long, replay, 409) →
validation (422) → template → sender → unsubscribe group → suppression → group opt-out →
quota (429). Rate-limit headers are on every send/batch response once the limiter has run.
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging import limits, partitions, selectors, services, stats, suppressions, timeline
from messaging.models import MessageStatus, Suppression, UnsubscribeGroup
from messaging.presenters import (
    content_view,
    event_view,
    group_view,
    message_view,
    suppression_view,
    unsubscribe_view,
)
from messaging.serializers import (
    BatchItemResultSerializer,
    BatchRequestSerializer,
    MessageContentViewSerializer,
    MessageEventViewSerializer,
    MessageViewSerializer,
    SendAcceptedSerializer,
    SendSerializer,
    StatsSerializer,
    SuppressionCreateSerializer,
    SuppressionViewSerializer,
    UnsubscribeCreateSerializer,
    UnsubscribeGroupCreateSerializer,
    UnsubscribeGroupViewSerializer,
    UnsubscribeViewSerializer,
)
from pufferpost.errors import ApiError
from pufferpost.formats import normalise_address
from pufferpost.openapi import CURSOR, PAGE_PARAMETERS, RATE_LIMIT_HEADERS, error, page_of, path_id
from pufferpost.pagination import paginate
from pufferpost.tenancy import WorkspaceScopedViewSet
from senders.models import Sender
from templates_app.formatting import is_timezone
from templates_app.models import Template


def _text_param(name: str, raw: str) -> str:
    if "\x00" in raw:
        raise ValidationError({name: [ErrorDetail("Must not contain NUL characters.", code="invalid_character")]})
    return raw


def _parse_timestamp(name: str, raw: str) -> datetime:
    # An unencoded `+00:00` arrives as ` 00:00` in a query string.
    try:
        value = datetime.fromisoformat(raw.strip().replace(" ", "+"))
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        # In UTC, because PostgreSQL refuses offsets past ±15:59 that Python accepts (up to ±23:59).
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationError({name: [ErrorDetail("Use an ISO 8601 timestamp.", code="invalid_timestamp")]})


def _message_filters(params) -> dict:
    filters = {}
    if raw := params.get("status"):
        if raw not in MessageStatus.values:
            raise ValidationError(
                {"status": [ErrorDetail(f"One of: {', '.join(MessageStatus.values)}.", code="invalid_choice")]}
            )
        filters["status"] = raw
    if raw := params.get("recipient"):
        filters["to"] = normalise_address(_text_param("recipient", raw))
    if raw := params.get("from"):
        filters["from_address"] = normalise_address(_text_param("from", raw))
    if raw := params.get("templateId"):
        filters["template_id"] = _text_param("templateId", raw)
    if raw := params.get("createdAfter"):
        filters["created_at__gte"] = _parse_timestamp("createdAfter", raw)
    if raw := params.get("createdBefore"):
        filters["created_at__lt"] = _parse_timestamp("createdBefore", raw)
    return filters


MESSAGE_ID = path_id("The message's `msg_…` id.")
GROUP_ID = path_id("The unsubscribe group's `grp_…` id.")
BAD_PAGE = error("`validation_failed`: a bad `limit` or `cursor`.")
SEND_PAUSED = error(
    "`sending_paused`: sending is paused for this workspace; or `missing_scope`: the key lacks `messages:send`."
)
SEND_LIMITED = error("`rate_limited` (see `Retry-After` and `RateLimit-Reset`) or `quota_exceeded`.")


def _filter(name: str, description: str, type_=OpenApiTypes.STR) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, description=description)


MESSAGE_FILTERS = [
    OpenApiParameter(
        "status", OpenApiTypes.STR, enum=MessageStatus.values, description="Only messages in this status."
    ),
    _filter("recipient", "Only messages to this address."),
    _filter("from", "Only messages from this address."),
    _filter("templateId", "Only messages sent with this `tpl_…` template."),
    _filter("createdAfter", "Only messages created at or after this ISO 8601 time.", OpenApiTypes.DATETIME),
    _filter("createdBefore", "Only messages created before this ISO 8601 time.", OpenApiTypes.DATETIME),
]


@extend_schema_view(
    create=extend_schema(
        summary="Send a message",
        description="Validates and stores the message, then answers 202; rendering and delivery are asynchronous.",
        request=SendSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="Makes the send safe to retry (at most 255 characters; kept at least 24 hours).",
            ),
            OpenApiParameter(
                "Idempotent-Replayed",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[202],
                description="`true` when this 202 replays an earlier request with the same Idempotency-Key.",
            ),
            *RATE_LIMIT_HEADERS,
        ],
        responses={
            202: SendAcceptedSerializer,
            403: SEND_PAUSED,
            409: error("`idempotency_key_reused` (a different body) or `idempotency_key_in_use` (still running)."),
            422: error(
                "`validation_failed` (with `violations`), `template_required`, `template_not_found`, "
                "`template_has_no_version`, `sender_not_available`, `unknown_unsubscribe_group`, "
                "`recipient_suppressed` or `recipient_unsubscribed`."
            ),
            429: SEND_LIMITED,
        },
    ),
    batch=extend_schema(
        summary="Send up to 100 messages",
        description="Each item is accepted or refused on its own; only a paused workspace refuses the whole batch.",
        request=BatchRequestSerializer,
        parameters=RATE_LIMIT_HEADERS,
        responses={
            200: OpenApiResponse(
                page_of(BatchItemResultSerializer, name="BatchResult", paginated=False),
                description="One result per item, in order.",
            ),
            403: SEND_PAUSED,
            429: error("`rate_limited` (see `Retry-After` and `RateLimit-Reset`)."),
        },
    ),
    list=extend_schema(
        summary="List messages",
        description="Newest first, cursor-paginated.",
        parameters=[*PAGE_PARAMETERS, *MESSAGE_FILTERS],
        responses={
            200: page_of(MessageViewSerializer, name="MessagePage"),
            422: error("`validation_failed`: a bad `limit`, `cursor`, `status` or timestamp."),
        },
    ),
    retrieve=extend_schema(summary="Get a message", parameters=[MESSAGE_ID], responses=MessageViewSerializer),
    content=extend_schema(
        summary="What the message's recipients received",
        description="The rendered subject, text and HTML exactly as delivered (tracking links and pixel "
        "included); attachments by name and type only. Available once delivery has built the message, "
        "for as long as the message is kept.",
        parameters=[MESSAGE_ID],
        responses={
            200: MessageContentViewSerializer,
            409: error("`content_not_available`: the message has not been built for delivery yet."),
        },
    ),
    events=extend_schema(
        summary="A message's event timeline",
        description="Oldest first (by occurred_at, then recorded_at). Without `limit` a page holds up to 100 "
        "events; follow `next_cursor` for more.",
        parameters=[
            MESSAGE_ID,
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
                OpenApiParameter.QUERY,
                description="Page size, 1 to 100 (default 100).",
            ),
            CURSOR,
        ],
        responses={
            200: page_of(MessageEventViewSerializer, name="MessageEventList"),
            422: error("`validation_failed`: a bad `limit` or `cursor`."),
        },
    ),
)
class MessageViewSet(WorkspaceScopedViewSet):
    not_found_code = "message_not_found"
    not_found_message = "No such message."
    required_scopes = {
        "create": "messages:send",
        "batch": "messages:send",
        "list": "messages:read",
        "retrieve": "messages:read",
        "events": "messages:read",
        "content": "messages:read",
    }
    # Sends have the workspace's own limiter and quota (messaging.limits), not the write limit.
    own_rate_limit_actions = {"create", "batch"}
    admission = None

    def base_queryset(self):
        # Live and test messages never mix: a key reads only the messages of its own mode.
        return selectors.message_queryset().filter(livemode=self.request.auth.livemode)

    def finalize_response(self, request, response, *args, **kwargs):
        if self.admission is not None:
            for name, value in self.admission.headers().items():
                response[name] = value
        return super().finalize_response(request, response, *args, **kwargs)

    def _admit(self, *, messages: int, max_body: int):
        workspace = self.workspace
        if workspace.sending_paused:
            raise services.sending_paused_error()
        self.admission = limits.admit(workspace=workspace, messages=messages, livemode=self.request.auth.livemode)
        if self.admission.limited:
            raise services.rate_limited_error(self.admission)
        try:
            length = int(self.request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > max_body:
            raise ApiError(
                status_code=413, code="payload_too_large", message=f"The request body exceeds {max_body} bytes."
            )
        return self.admission

    def create(self, request):
        admission = self._admit(messages=1, max_body=settings.PUFFERPOST_SEND_MAX_BODY_BYTES)
        try:
            outcome = services.message_send(
                workspace=self.workspace,
                payload=request.data,
                admission=admission,
                idempotency_key=request.headers.get("Idempotency-Key"),
                livemode=request.auth.livemode,
            )
        finally:
            admission.release_unused()
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
        return Response(outcome.body, status=status.HTTP_202_ACCEPTED, headers=headers)

    @action(detail=False, methods=["post"])
    def batch(self, request):
        # Quota is reserved later, once the batch knows how many items passed their checks.
        admission = self._admit(messages=0, max_body=settings.PUFFERPOST_BATCH_MAX_BODY_BYTES)
        try:
            results = services.message_send_batch(
                workspace=self.workspace, payload=request.data, admission=admission, livemode=request.auth.livemode
            )
        finally:
            admission.release_unused()
        return Response({"data": results})

    def list(self, request):
        filters = _message_filters(request.query_params)
        scope = "messages:" + self.workspace.id + ":" + repr(sorted((k, str(v)) for k, v in filters.items()))
        rows, next_cursor = paginate(self.get_queryset().filter(**filters), request.query_params, scope=scope)
        return Response({"data": [message_view(m) for m in rows], "next_cursor": next_cursor})

    def retrieve(self, request, id=None):
        return Response(message_view(self.get_object()))

    @action(detail=True, methods=["get"])
    def events(self, request, id=None):
        if not self.get_queryset().filter(pk=id).exists():
            raise ApiError(status_code=404, code=self.not_found_code, message=self.not_found_message)
        events, next_cursor = timeline.message_events_page(message_id=id, params=request.query_params)
        return Response({"data": [event_view(e) for e in events], "next_cursor": next_cursor})

    @action(detail=True, methods=["get"])
    def content(self, request, id=None):
        message = self.get_object()
        content = selectors.message_content(message_id=message.pk)
        # Mail not yet handed to delivery has no content yet, however old its month.
        unbuilt = message.status in (MessageStatus.ACCEPTED, MessageStatus.QUEUED)
        if (
            content is None
            and not unbuilt
            and partitions.content_dropped(message.pk, content_retention_days=message.workspace.content_retention_days)
        ):
            raise ApiError(
                status_code=409,
                code="content_not_available",
                message="The content of this message is past the workspace's content retention "
                f"({message.workspace.content_retention_days} days after its month) and was removed.",
            )
        if content is None:
            raise ApiError(
                status_code=409,
                code="content_not_available",
                message=f"The message is {message.status} and has not been built for delivery yet; "
                "its content is available once a delivery attempt has rendered it.",
            )
        return Response(content_view(message, content))


@extend_schema_view(
    list=extend_schema(
        summary="List suppressions",
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(SuppressionViewSerializer, name="SuppressionPage"), 422: BAD_PAGE},
    ),
    create=extend_schema(
        summary="Suppress an address",
        request=SuppressionCreateSerializer,
        responses={
            201: SuppressionViewSerializer,
            200: OpenApiResponse(SuppressionViewSerializer, description="Already suppressed: the existing entry."),
        },
    ),
    destroy=extend_schema(
        summary="Remove a suppression",
        parameters=[path_id("The suppressed email address.", name="email")],
        responses={204: None},
    ),
)
class SuppressionViewSet(WorkspaceScopedViewSet):
    queryset = Suppression.objects.all()
    lookup_field = "email"
    not_found_code = "suppression_not_found"
    not_found_message = "No such suppression."
    required_scopes = {"list": "suppressions:read", "create": "suppressions:manage", "destroy": "suppressions:manage"}

    def list(self, request):
        rows, next_cursor = paginate(
            self.get_queryset(), request.query_params, scope="suppressions:" + self.workspace.id
        )
        return Response({"data": [suppression_view(s) for s in rows], "next_cursor": next_cursor})

    def create(self, request):
        serializer = SuppressionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        suppression, created = suppressions.suppression_create(workspace=self.workspace, **serializer.validated_data)
        return Response(suppression_view(suppression), status=201 if created else 200)

    def destroy(self, request, email=None):
        if not suppressions.suppression_delete(workspace=self.workspace, email=normalise_address(email)):
            raise ApiError(status_code=404, code=self.not_found_code, message=self.not_found_message)
        return Response(status=204)


@extend_schema_view(
    list=extend_schema(
        summary="List unsubscribe groups",
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(UnsubscribeGroupViewSerializer, name="UnsubscribeGroupPage"), 422: BAD_PAGE},
    ),
    create=extend_schema(
        summary="Create an unsubscribe group",
        request=UnsubscribeGroupCreateSerializer,
        responses={201: UnsubscribeGroupViewSerializer},
    ),
    retrieve=extend_schema(
        summary="Get an unsubscribe group", parameters=[GROUP_ID], responses=UnsubscribeGroupViewSerializer
    ),
    unsubscribes=extend_schema(
        summary="Opt an address out of a group",
        parameters=[GROUP_ID],
        request=UnsubscribeCreateSerializer,
        responses={
            201: UnsubscribeViewSerializer,
            200: OpenApiResponse(UnsubscribeViewSerializer, description="Already opted out: the existing entry."),
        },
    ),
    unsubscribe_delete=extend_schema(
        summary="Opt an address back in",
        parameters=[GROUP_ID, path_id("The opted-out email address.", name="email")],
        responses={204: None, 404: error("`unsubscribe_group_not_found` or `unsubscribe_not_found`.")},
    ),
)
class UnsubscribeGroupViewSet(WorkspaceScopedViewSet):
    queryset = UnsubscribeGroup.objects.all()
    not_found_code = "unsubscribe_group_not_found"
    not_found_message = "No such unsubscribe group."
    required_scopes = {
        "list": "suppressions:read",
        "retrieve": "suppressions:read",
        "create": "suppressions:manage",
        "unsubscribes": "suppressions:manage",
        "unsubscribe_delete": "suppressions:manage",
    }

    def list(self, request):
        rows, next_cursor = paginate(self.get_queryset(), request.query_params, scope="groups:" + self.workspace.id)
        return Response({"data": [group_view(g) for g in rows], "next_cursor": next_cursor})

    def create(self, request):
        serializer = UnsubscribeGroupCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        group = suppressions.unsubscribe_group_create(workspace=self.workspace, **serializer.validated_data)
        return Response(group_view(group), status=201)

    def retrieve(self, request, id=None):
        return Response(group_view(self.get_object()))

    @action(detail=True, methods=["post"])
    def unsubscribes(self, request, id=None):
        group = self.get_object()
        serializer = UnsubscribeCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        unsubscribe, created = suppressions.unsubscribe_create(group=group, email=serializer.validated_data["email"])
        return Response(unsubscribe_view(unsubscribe), status=201 if created else 200)

    @action(detail=True, methods=["delete"], url_path=r"unsubscribes/(?P<email>[^/]+)")
    def unsubscribe_delete(self, request, id=None, email=None):
        group = get_object_or_404(self.get_queryset(), pk=id)
        if not suppressions.unsubscribe_delete(group=group, email=normalise_address(email)):
            raise ApiError(status_code=404, code="unsubscribe_not_found", message="No such unsubscribe in this group.")
        return Response(status=204)


STATS_DESCRIPTION = (
    "Counts per event type in each hour or day of the period, with the delivery, bounce, block and "
    "complaint rates, for the key's mode (a test key reads test mail only). Read from an hourly rollup "
    "that the workers keep as they record events, so the cost follows the period, not the volume.\n\n"
    "The period is widened to whole buckets: `from` rounded down, `to` rounded up, and every bucket is "
    "listed, empty ones with zeros. At most 366 days and 2,000 buckets a request. Rates are shares of "
    "the delivery outcomes (`delivered + bounced`); the complaint rate is per delivered message; a rate "
    "without outcomes is null. `bounce_rate` leaves blocks out (they count in `block_rate`), as the "
    "sender auto-pause does."
)
STATS_PARAMETERS = [
    _filter(
        "from",
        "Start of the period, ISO 8601 (default: 30 days, or 48 hours by hour, before `to`).",
        OpenApiTypes.DATETIME,
    ),
    _filter("to", "End of the period, exclusive, ISO 8601 (default: now).", OpenApiTypes.DATETIME),
    OpenApiParameter(
        "interval", OpenApiTypes.STR, enum=list(stats.INTERVALS), description="Bucket size (default `day`)."
    ),
    _filter(
        "timezone",
        "IANA zone whose days the buckets follow (default `UTC`); it must be a whole number of hours off "
        "UTC through the period (so not e.g. `Asia/Kolkata`).",
    ),
    _filter("senderId", "Only mail from this `snd_…` sender."),
    _filter("templateId", "Only mail sent with this `tpl_…` template."),
    _filter("unsubscribeGroupId", "Only mail sent in this `grp_…` unsubscribe group."),
]


def _stats_example() -> OpenApiExample:
    """Two Berlin days of one sender's mail; the rates are computed from the counts as the server does."""
    days = [
        {
            "accepted": 1204, "queued": 1204, "sent": 1183, "deferred": 37, "delivered": 1179, "opened": 412,
            "clicked": 97, "bounced": 19, "complained": 1, "suppressed": 6, "unsubscribed": 2, "errored": 3,
            "blocked": 4,
        },
        {
            "accepted": 987, "queued": 987, "sent": 975, "deferred": 12, "delivered": 970, "opened": 288,
            "clicked": 61, "bounced": 11, "complained": 2, "suppressed": 3, "unsubscribed": 1, "errored": 1,
            "blocked": 2,
        },
    ]  # fmt: skip
    totals = {key: sum(day[key] for day in days) for key in stats.COUNT_KEYS}
    edges = ["2026-11-29T23:00:00+00:00", "2026-11-30T23:00:00+00:00", "2026-12-01T23:00:00+00:00"]
    return OpenApiExample(
        "Two days in Berlin for one sender",
        description="`GET /v1/stats?from=2026-11-30T00:00:00%2B01:00&to=2026-12-02T00:00:00%2B01:00"
        "&interval=day&timezone=Europe/Berlin&senderId=snd_01JDQ3V8K4M2N7P5R9S6T0W1X3`",
        value={
            "from": edges[0],
            "to": edges[-1],
            "interval": "day",
            "timezone": "Europe/Berlin",
            "filters": {
                "sender_id": "snd_01JDQ3V8K4M2N7P5R9S6T0W1X3",
                "template_id": None,
                "unsubscribe_group_id": None,
            },
            "totals": {"counts": totals, "rates": stats.rates(totals)},
            "data": [
                {"start": start, "end": end, "counts": day, "rates": stats.rates(day)}
                for start, end, day in zip(edges, edges[1:], days, strict=False)
            ],
        },
        response_only=True,
    )


STATS_EXAMPLE = _stats_example()


def _stats_period(params, errors: dict) -> stats.Period | None:
    """The period `from`/`to`/`interval`/`timezone` ask for, or None with `errors` filled in."""

    def refuse(field, code, message):
        errors.setdefault(field, []).append(ErrorDetail(message, code=code))

    interval = params.get("interval") or "day"
    if interval not in stats.INTERVALS:
        refuse("interval", "invalid_choice", "One of: hour, day.")
    zone_name = params.get("timezone") or "UTC"
    if not is_timezone(zone_name):
        refuse("timezone", "invalid_timezone", "Use an IANA timezone such as 'Europe/Berlin'.")
    bounds = {}
    for name in ("from", "to"):
        if params.get(name):
            try:
                bounds[name] = _parse_timestamp(name, params[name])
            except ValidationError as exc:
                errors.update(exc.detail)
    if errors:
        return None
    try:
        until = bounds.get("to") or timezone.now()
        since = bounds.get("from") or until - stats.DEFAULT_SPAN[interval]
        if since >= until:
            refuse("to", "invalid_range", "Must be later than `from`.")
        elif until - since > stats.MAX_SPAN:
            refuse("to", "range_too_long", "A period may span at most 366 days.")
        elif stats.buckets_needed(since=since, until=until, interval=interval) > stats.MAX_BUCKETS:
            refuse(
                "interval",
                "too_many_buckets",
                f"At most {stats.MAX_BUCKETS} buckets a request: use interval=day or a shorter period.",
            )
        elif not stats.whole_hours(ZoneInfo(zone_name), since, until):
            refuse(
                "timezone",
                "unsupported_timezone",
                f"Stats are kept per UTC hour, and {zone_name} is not a whole number of hours off UTC in "
                "this period; use a zone that is (such as UTC or Asia/Dubai).",
            )
        if errors:
            return None
        return stats.period_of(since=since, until=until, interval=interval, zone=zone_name)
    except OverflowError:
        # A period at the calendar's edge (year 1 or 9999), whose whole buckets do not fit in it.
        refuse("to", "invalid_timestamp", "Use times between the years 1 and 9999 with a day to spare.")
        return None


STATS_FILTERS = (
    ("senderId", "sender_id", Sender, "sender_not_found", "No such sender in this workspace."),
    ("templateId", "template_id", Template, "template_not_found", "No such template in this workspace."),
    (
        "unsubscribeGroupId",
        "unsubscribe_group_id",
        UnsubscribeGroup,
        "unsubscribe_group_not_found",
        "No such unsubscribe group in this workspace.",
    ),
)


class StatsView(APIView):
    """Counts per event type and the delivery, bounce, block and complaint rates over a period."""

    required_scopes = {"GET": "messages:read"}

    @extend_schema(
        summary="Event counts and rates over a period",
        description=STATS_DESCRIPTION,
        parameters=STATS_PARAMETERS,
        responses={
            200: OpenApiResponse(StatsSerializer, examples=[STATS_EXAMPLE]),
            422: error(
                "`validation_failed`: a bad `from`, `to` (`invalid_timestamp`, `invalid_range`, `range_too_long`), "
                "`interval` (`invalid_choice`, `too_many_buckets`), `timezone` (`invalid_timezone`, "
                "`unsupported_timezone`), or a filter naming nothing in this workspace (`sender_not_found`, "
                "`template_not_found`, `unsubscribe_group_not_found`)."
            ),
        },
    )
    def get(self, request):
        params = request.query_params
        workspace_id = request.auth.workspace_id
        errors: dict = {}
        period = _stats_period(params, errors)
        filters = {}
        for param, key, model, code, message in STATS_FILTERS:
            raw = params.get(param) or None
            if raw is not None and (
                "\x00" in raw or not model.objects.filter(workspace_id=workspace_id, pk=raw).exists()
            ):
                errors.setdefault(param, []).append(ErrorDetail(message, code=code))
            filters[key] = raw
        if errors:
            raise ValidationError(errors)
        buckets = stats.event_counts(
            workspace_id=workspace_id,
            livemode=request.auth.livemode,
            period=period,
            sender_id=filters["sender_id"],
            template_id=filters["template_id"],
            group_id=filters["unsubscribe_group_id"],
        )
        return Response(stats.stats_view(period=period, buckets=buckets, filters=filters))
