"""Typed views of the API's answers (snake_case, as the server writes them).

Each model keeps the whole decoded object in `raw`, so a field the server adds later is still
readable before this package names it. `from` is a Python keyword: it is `from_` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar

from pufferpost_client.errors import RateLimit, Violation

T = TypeVar("T")


class _Model:
    _nested: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    _keys: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        kwargs: dict[str, Any] = {"raw": data}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name == "raw":
                continue
            key = cls._keys.get(f.name, f.name)
            if key not in data:
                continue
            value = data[key]
            convert = cls._nested.get(f.name)
            if convert is not None and value is not None:
                value = [convert(v) for v in value] if isinstance(value, list) else convert(value)
            kwargs[f.name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class Attachment:
    """An attachment to send: `content` is base64 (use `Attachment.from_bytes`)."""

    filename: str
    content_type: str
    content: str

    @classmethod
    def from_bytes(cls, filename: str, content_type: str, data: bytes) -> Attachment:
        import base64

        return cls(filename=filename, content_type=content_type, content=base64.b64encode(data).decode("ascii"))

    def to_json(self) -> dict[str, str]:
        return {"filename": self.filename, "contentType": self.content_type, "content": self.content}


@dataclass(frozen=True)
class AttachmentInfo(_Model):
    filename: str = ""
    content_type: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SendResult:
    """The 202 of a send. `replayed` is the `Idempotent-Replayed: true` header: this answer repeats
    an earlier send with the same Idempotency-Key, and no second message was created."""

    id: str
    status: str
    replayed: bool
    request_id: str | None
    rate_limit: RateLimit | None


@dataclass(frozen=True)
class BatchItemError:
    code: str
    message: str
    violations: list[Violation]


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch's answer: `status` is `accepted` (with `id`) or `error` (with `error`)."""

    index: int
    status: str
    id: str | None
    error: BatchItemError | None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


@dataclass(frozen=True)
class BatchResult:
    items: list[BatchItem]
    request_id: str | None
    rate_limit: RateLimit | None

    @property
    def accepted(self) -> list[BatchItem]:
        return [item for item in self.items if item.accepted]

    @property
    def failed(self) -> list[BatchItem]:
        return [item for item in self.items if not item.accepted]


@dataclass(frozen=True)
class Message(_Model):
    _nested = {"attachments": AttachmentInfo.from_json}
    _keys = {"from_": "from"}

    id: str = ""
    status: str = ""
    to: str = ""
    from_: str = ""
    reply_to: str | None = None
    cc: list[str] = field(default_factory=list)
    attachments: list[AttachmentInfo] = field(default_factory=list)
    subject: str | None = None
    template_id: str | None = None
    template_name: str | None = None
    template_version: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    locale: str | None = None
    timezone: str | None = None
    unsubscribe_group: str | None = None
    test: bool = False
    created_at: str = ""
    updated_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Event(_Model):
    """One entry of a message's timeline (`accepted`, `queued`, `sent`, `delivered`, ...)."""

    id: str = ""
    type: str = ""
    occurred_at: str = ""
    recorded_at: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class MessageContent(_Model):
    _nested = {"attachments": AttachmentInfo.from_json}

    id: str = ""
    subject: str = ""
    text: str = ""
    html: str = ""
    attachments: list[AttachmentInfo] = field(default_factory=list)
    built_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class DnsRecord(_Model):
    purpose: str = ""
    type: str = ""
    host: str = ""
    value: str = ""
    priority: int | None = None
    state: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Domain(_Model):
    _nested = {"dns_records": DnsRecord.from_json}

    id: str = ""
    domain: str = ""
    verified: bool = False
    dkim_status: str = ""
    dmarc_status: str = ""
    dkim_error: str | None = None
    dns_records: list[DnsRecord] = field(default_factory=list)
    return_path_host: str | None = None
    return_path_status: str | None = None
    bounce_domain: str | None = None
    record_checks: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    last_checked_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Sender(_Model):
    id: str = ""
    workspace_id: str = ""
    from_address: str = ""
    display_name: str | None = None
    state: str = ""
    state_reason: str = ""
    created_at: str = ""
    updated_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Template(_Model):
    id: str = ""
    name: str = ""
    slug: str = ""
    latest_version: int | None = None
    strict_variables: bool = False
    archived: bool = False
    created_at: str = ""
    updated_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class TemplateVersion(_Model):
    template_id: str = ""
    version: int = 0
    subject: str = ""
    html: str = ""
    text: str = ""
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    created_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Rendered(_Model):
    """A render preview; `missing_variables` lists what the template uses that `data` lacks."""

    subject: str = ""
    html: str = ""
    text: str = ""
    version: int = 0
    locale: str = ""
    missing_variables: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Suppression(_Model):
    email: str = ""
    reason: str = ""
    created_at: str = ""
    source_message_id: str | None = None
    why: str = ""
    remove: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class UnsubscribeGroup(_Model):
    id: str = ""
    name: str = ""
    description: str = ""
    created_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Unsubscribe(_Model):
    email: str = ""
    group_id: str = ""
    created_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Webhook(_Model):
    """An endpoint; `secret` (`whsec_…`) is set only on the answer to `webhooks.create`."""

    id: str = ""
    url: str = ""
    events: list[str] = field(default_factory=list)
    created_at: str = ""
    secret: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class WebhookAttempt(_Model):
    started_at: str = ""
    duration_ms: int = 0
    response_status: int | None = None
    response_body: str = ""
    error: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class WebhookDelivery(_Model):
    _nested = {"attempts": WebhookAttempt.from_json}

    event_id: str = ""
    event_type: str = ""
    status: str = ""
    attempt_count: int = 0
    next_attempt_at: str | None = None
    last_response_status: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: list[WebhookAttempt] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Workspace(_Model):
    id: str = ""
    name: str = ""
    default_locale: str = ""
    sending_paused: bool = False
    monthly_quota: int = 0
    monthly_quota_used: int = 0
    rate_limit_per_minute: int = 0
    open_tracking: bool = False
    click_tracking: bool = False
    created_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its rows and the cursor of the next page (None on the last one)."""

    data: list[T]
    next_cursor: str | None


class Paginator(Generic[T]):
    """Iterating yields every row of every page, fetching the next page (`?cursor=`) when needed.

    `pages()` yields whole pages; `first_page()` fetches one. Nothing is fetched until you iterate.
    """

    def __init__(self, fetch: Callable[[str | None], Page[T]]) -> None:
        self._fetch = fetch

    def pages(self) -> Iterator[Page[T]]:
        cursor: str | None = None
        while True:
            page = self._fetch(cursor)
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def first_page(self) -> Page[T]:
        return self._fetch(None)

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.data

    def to_list(self) -> list[T]:
        return list(self)


def batch_item(data: dict[str, Any]) -> BatchItem:
    error = data.get("error")
    return BatchItem(
        index=int(data.get("index", 0)),
        status=str(data.get("status", "")),
        id=data.get("id"),
        error=BatchItemError(
            code=error.get("code", ""),
            message=error.get("message", ""),
            violations=[
                Violation(field=v.get("field"), code=v.get("code", ""), message=v.get("message", ""))
                for v in error.get("violations") or []
            ],
        )
        if isinstance(error, dict)
        else None,
    )
