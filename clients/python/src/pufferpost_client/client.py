"""`PufferPost`, the client: one namespace per resource, each method one API call (lists: one per page).

Write bodies go out camelCase exactly as the guides spell them (`templateId`, `replyTo`,
`fromAddress`); answers come back as the models in `pufferpost_client.models`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from pufferpost_client._transport import Response, RetryNote, Transport
from pufferpost_client.models import (
    Attachment,
    BatchResult,
    Domain,
    Event,
    Message,
    MessageContent,
    Page,
    Paginator,
    Rendered,
    Sender,
    SendResult,
    Suppression,
    Template,
    TemplateVersion,
    Unsubscribe,
    UnsubscribeGroup,
    Webhook,
    WebhookDelivery,
    Workspace,
    batch_item,
)

T = TypeVar("T")
DEFAULT_BASE_URL = "http://localhost:8000"


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def send_body(
    *,
    from_: str,
    to: str,
    template: str | None = None,
    template_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    reply_to: str | None = None,
    cc: Iterable[str] | None = None,
    metadata: Mapping[str, str] | None = None,
    unsubscribe_group: str | None = None,
    locale: str | None = None,
    timezone: str | None = None,
    attachments: Iterable[Attachment | Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The JSON of one send (also one item of a batch), camelCase as the sending guide has it."""
    return _drop_none(
        {
            "from": from_,
            "to": to,
            "templateId": template_id,
            "template": template,
            "data": dict(data) if data is not None else None,
            "replyTo": reply_to,
            "cc": list(cc) if cc is not None else None,
            "metadata": dict(metadata) if metadata is not None else None,
            "unsubscribeGroup": unsubscribe_group,
            "locale": locale,
            "timezone": timezone,
            "attachments": [a.to_json() if isinstance(a, Attachment) else dict(a) for a in attachments]
            if attachments is not None
            else None,
        }
    )


class _Resource:
    def __init__(self, client: PufferPost) -> None:
        self._client = client

    def _call(self, method: str, path: str, **kwargs: Any) -> Response:
        return self._client.request(method, path, **kwargs)

    def _paginate(
        self, path: str, build: Callable[[dict[str, Any]], T], params: Mapping[str, Any] | None = None, limit: int = 100
    ) -> Paginator[T]:
        def fetch(cursor: str | None) -> Page[T]:
            body = self._call("GET", path, params={**(params or {}), "limit": limit, "cursor": cursor}).body
            return Page(data=[build(row) for row in body.get("data", [])], next_cursor=body.get("next_cursor"))

        return Paginator(fetch)


class Messages(_Resource):
    def send(self, *, idempotency_key: str | None = None, **fields: Any) -> SendResult:
        """`POST /v1/messages` (202). Keyword arguments as `send_body`; `idempotency_key` makes the
        send safe to retry (and lets the client retry it on 429/503). `replayed` tells a replay."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        answer = self._call("POST", "/v1/messages", json_body=send_body(**fields), headers=headers)
        return SendResult(
            id=answer.body["id"],
            status=answer.body["status"],
            replayed=answer.headers.get("Idempotent-Replayed") == "true",
            request_id=answer.request_id,
            rate_limit=answer.rate_limit,
        )

    def batch(self, messages: Iterable[Mapping[str, Any]]) -> BatchResult:
        """`POST /v1/messages/batch`: up to 100 sends (dicts of `send_body` keyword arguments, or
        bodies already camelCase with a `"from"` key); each item is accepted or refused on its own.
        The server honours no Idempotency-Key here, so a batch is never retried."""
        items = [dict(m) if "from" in m else send_body(**m) for m in messages]
        answer = self._call("POST", "/v1/messages/batch", json_body={"messages": items})
        return BatchResult(
            items=[batch_item(row) for row in answer.body["data"]],
            request_id=answer.request_id,
            rate_limit=answer.rate_limit,
        )

    def get(self, message_id: str) -> Message:
        return Message.from_json(self._call("GET", f"/v1/messages/{_segment(message_id)}").body)

    def list(
        self,
        *,
        status: str | None = None,
        recipient: str | None = None,
        from_: str | None = None,
        template_id: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        limit: int = 100,
    ) -> Paginator[Message]:
        """Newest first; iterate for every match, page by page."""
        params = {
            "status": status,
            "recipient": recipient,
            "from": from_,
            "templateId": template_id,
            "createdAfter": created_after,
            "createdBefore": created_before,
        }
        return self._paginate("/v1/messages", Message.from_json, params, limit)

    def events(self, message_id: str, *, limit: int = 100) -> Paginator[Event]:
        """The timeline, oldest first."""
        return self._paginate(f"/v1/messages/{_segment(message_id)}/events", Event.from_json, limit=limit)

    def content(self, message_id: str) -> MessageContent:
        """The subject, text and HTML as delivered (409 `content_not_available` before the first attempt)."""
        return MessageContent.from_json(self._call("GET", f"/v1/messages/{_segment(message_id)}/content").body)


class Domains(_Resource):
    def create(self, domain: str) -> Domain:
        """`POST /v1/domains`: idempotent on the domain (201 new, 200 the existing record)."""
        return Domain.from_json(self._call("POST", "/v1/domains", json_body={"domain": domain}).body)

    def get(self, domain_id: str) -> Domain:
        return Domain.from_json(self._call("GET", f"/v1/domains/{_segment(domain_id)}").body)

    def list(self, *, limit: int = 100) -> Paginator[Domain]:
        return self._paginate("/v1/domains", Domain.from_json, limit=limit)

    def refresh(self, domain_id: str) -> Domain:
        """Re-check DKIM, DMARC and the return path now."""
        return Domain.from_json(self._call("POST", f"/v1/domains/{_segment(domain_id)}/refresh", json_body={}).body)

    def rotate_dkim(self, domain_id: str) -> Domain:
        return Domain.from_json(self._call("POST", f"/v1/domains/{_segment(domain_id)}/dkim/rotate", json_body={}).body)

    def delete(self, domain_id: str) -> None:
        self._call("DELETE", f"/v1/domains/{_segment(domain_id)}")


class Senders(_Resource):
    def create(self, from_address: str, *, display_name: str | None = None) -> Sender:
        """Starts `under_review`; staff approve it before it may send live mail."""
        body = _drop_none({"fromAddress": from_address, "displayName": display_name})
        return Sender.from_json(self._call("POST", "/v1/senders", json_body=body).body)

    def get(self, sender_id: str) -> Sender:
        return Sender.from_json(self._call("GET", f"/v1/senders/{_segment(sender_id)}").body)

    def list(self, *, limit: int = 100) -> Paginator[Sender]:
        return self._paginate("/v1/senders", Sender.from_json, limit=limit)


class Templates(_Resource):
    def create(self, name: str, *, slug: str | None = None, strict_variables: bool | None = None) -> Template:
        body = _drop_none({"name": name, "slug": slug, "strictVariables": strict_variables})
        return Template.from_json(self._call("POST", "/v1/templates", json_body=body).body)

    def get(self, template: str) -> Template:
        """By `tpl_…` id or slug."""
        return Template.from_json(self._call("GET", f"/v1/templates/{_segment(template)}").body)

    def list(self, *, limit: int = 100) -> Paginator[Template]:
        return self._paginate("/v1/templates", Template.from_json, limit=limit)

    def update(
        self, template: str, *, name: str | None = None, slug: str | None = None, strict_variables: bool | None = None
    ) -> Template:
        body = _drop_none({"name": name, "slug": slug, "strictVariables": strict_variables})
        return Template.from_json(self._call("PATCH", f"/v1/templates/{_segment(template)}", json_body=body).body)

    def archive(self, template: str) -> None:
        """`DELETE /v1/templates/{id}`: archived templates keep their versions but take no new sends."""
        self._call("DELETE", f"/v1/templates/{_segment(template)}")

    def create_version(
        self,
        template: str,
        *,
        subject: str,
        html: str,
        text: str | None = None,
        translations: Mapping[str, Mapping[str, str]] | None = None,
    ) -> TemplateVersion:
        """Versions are immutable and numbered 1, 2, ...; a send uses the latest."""
        body = _drop_none(
            {
                "subject": subject,
                "html": html,
                "text": text,
                "translations": {k: dict(v) for k, v in translations.items()} if translations else None,
            }
        )
        path = f"/v1/templates/{_segment(template)}/versions"
        return TemplateVersion.from_json(self._call("POST", path, json_body=body).body)

    def versions(self, template: str, *, limit: int = 100) -> Paginator[TemplateVersion]:
        return self._paginate(f"/v1/templates/{_segment(template)}/versions", TemplateVersion.from_json, limit=limit)

    def get_version(self, template: str, number: int) -> TemplateVersion:
        path = f"/v1/templates/{_segment(template)}/versions/{int(number)}"
        return TemplateVersion.from_json(self._call("GET", path).body)

    def render(
        self,
        template: str,
        *,
        data: Mapping[str, Any] | None = None,
        locale: str | None = None,
        timezone: str | None = None,
        version: int | None = None,
    ) -> Rendered:
        """The preview: what a send with this `data` would render, without sending."""
        body = _drop_none(
            {
                "data": dict(data) if data is not None else None,
                "locale": locale,
                "timezone": timezone,
                "version": version,
            }
        )
        return Rendered.from_json(self._call("POST", f"/v1/templates/{_segment(template)}/render", json_body=body).body)


class Suppressions(_Resource):
    def list(self, *, limit: int = 100) -> Paginator[Suppression]:
        return self._paginate("/v1/suppressions", Suppression.from_json, limit=limit)

    def create(self, email: str) -> Suppression:
        """Suppress an address by hand (reason `manual`)."""
        return Suppression.from_json(
            self._call("POST", "/v1/suppressions", json_body={"email": email, "reason": "manual"}).body
        )

    def delete(self, email: str) -> None:
        """Let an address receive mail again."""
        self._call("DELETE", f"/v1/suppressions/{_segment(email)}")


class UnsubscribeGroups(_Resource):
    def create(self, name: str, *, description: str | None = None) -> UnsubscribeGroup:
        body = _drop_none({"name": name, "description": description})
        return UnsubscribeGroup.from_json(self._call("POST", "/v1/unsubscribe-groups", json_body=body).body)

    def get(self, group_id: str) -> UnsubscribeGroup:
        return UnsubscribeGroup.from_json(self._call("GET", f"/v1/unsubscribe-groups/{_segment(group_id)}").body)

    def list(self, *, limit: int = 100) -> Paginator[UnsubscribeGroup]:
        return self._paginate("/v1/unsubscribe-groups", UnsubscribeGroup.from_json, limit=limit)

    def unsubscribe(self, group_id: str, email: str) -> Unsubscribe:
        path = f"/v1/unsubscribe-groups/{_segment(group_id)}/unsubscribes"
        return Unsubscribe.from_json(self._call("POST", path, json_body={"email": email}).body)

    def resubscribe(self, group_id: str, email: str) -> None:
        self._call("DELETE", f"/v1/unsubscribe-groups/{_segment(group_id)}/unsubscribes/{_segment(email)}")


class Webhooks(_Resource):
    def create(self, url: str, *, events: Iterable[str] | None = None) -> Webhook:
        """The answer carries `secret` (`whsec_…`), shown this once: keep it for `verify_webhook`."""
        body = _drop_none({"url": url, "events": list(events) if events is not None else None})
        return Webhook.from_json(self._call("POST", "/v1/webhooks", json_body=body).body)

    def get(self, webhook_id: str) -> Webhook:
        return Webhook.from_json(self._call("GET", f"/v1/webhooks/{_segment(webhook_id)}").body)

    def list(self, *, limit: int = 100) -> Paginator[Webhook]:
        return self._paginate("/v1/webhooks", Webhook.from_json, limit=limit)

    def delete(self, webhook_id: str) -> None:
        self._call("DELETE", f"/v1/webhooks/{_segment(webhook_id)}")

    def deliveries(self, webhook_id: str, *, limit: int = 100) -> Paginator[WebhookDelivery]:
        """Each event sent to the endpoint, with its attempts and the receiver's answers."""
        path = f"/v1/webhooks/{_segment(webhook_id)}/deliveries"
        return self._paginate(path, WebhookDelivery.from_json, limit=limit)


class Workspaces(_Resource):
    def get(self) -> Workspace:
        return Workspace.from_json(self._call("GET", "/v1/workspace").body)


class PufferPost:
    """A client for one API key.

    `base_url` defaults to `$PUFFERPOST_BASE_URL` or http://localhost:8000 (`make up`).
    `max_retries` (default 2) bounds the extra attempts of a retryable request (see
    `pufferpost_client._transport`); `max_retry_wait` (default 60 s) is the longest wait the client
    accepts before it raises instead. `sleep` and `on_retry` let callers (and tests) see the waits.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        max_retry_wait: float = 60.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[RetryNote], None] | None = None,
    ) -> None:
        api_key = api_key or os.environ.get("PUFFERPOST_API_KEY")
        if not api_key:
            raise ValueError("Pass api_key or set PUFFERPOST_API_KEY (key_live_… or key_test_…).")
        self._transport = Transport(
            api_key=api_key,
            base_url=base_url or os.environ.get("PUFFERPOST_BASE_URL") or DEFAULT_BASE_URL,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            session=session,
            sleep=sleep,
            on_retry=on_retry,
        )
        self.messages = Messages(self)
        self.domains = Domains(self)
        self.senders = Senders(self)
        self.templates = Templates(self)
        self.suppressions = Suppressions(self)
        self.unsubscribe_groups = UnsubscribeGroups(self)
        self.webhooks = Webhooks(self)
        self.workspace = Workspaces(self)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Any call by hand (`path` from the host, e.g. `/v1/messages`), with the same errors and retries."""
        return self._transport.request(
            method, path, params=params, json_body=json_body, content=content, headers=headers
        )
