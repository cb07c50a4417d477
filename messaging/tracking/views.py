"""The endpoints mail clients and mailbox providers hit: one-click unsubscribe, open pixel, click redirect.

Plain Django views, not API views: no key, no session, no JSON envelope. They name no platform
(white-label) and answer a bad token with a plain 404, never an error that tells a prober more.
"""

import logging

from django.http import HttpResponse, HttpResponseRedirect
from django.utils.html import format_html
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from messaging.tracking import selectors, services
from messaging.tracking.links import (
    BadToken,
    click_from_token,
    message_id_from_open_token,
    unsubscribe_from_token,
)

logger = logging.getLogger(__name__)

# A 1×1 GIF89a whose single palette entry is transparent (43 bytes).
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
button{{font:inherit;padding:.5rem 1.25rem;cursor:pointer}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def _no_store(response: HttpResponse) -> HttpResponse:
    # The URLs carry tokens: keep them out of caches and out of the Referer of the next request.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _page(title: str, body: str, *, status: int = 200) -> HttpResponse:
    html = format_html(_PAGE, title=title, body=body)
    return _no_store(HttpResponse(html, status=status, content_type="text/html; charset=utf-8"))


def _not_found() -> HttpResponse:
    return _page("Link not valid", format_html("<p>{}</p>", "This link is not valid or has expired."), status=404)


def _is_one_click(request) -> bool:
    return (
        request.content_type == "application/x-www-form-urlencoded"
        and request.POST.get("List-Unsubscribe") == "One-Click"
    )


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    """GET shows a confirmation button (link scanners prefetch GETs); any POST opts out (RFC 8058).

    The token names whom it opts out: the message's `to`, or (a cc's own copy) that cc address.
    """
    try:
        message_id, recipient = unsubscribe_from_token(token)
    except BadToken:
        return _not_found()
    if request.method != "POST":
        message = selectors.unsubscribe_page_message(message_id=message_id)
        if message is None or (recipient is not None and not services.is_cc_of(message, recipient)):
            return _not_found()
        what = (
            format_html("“{}” emails from {}", message.unsubscribe_group.name, message.from_address)
            if message.unsubscribe_group
            else format_html("emails from {}", message.from_address)
        )
        body = format_html(
            '<p>Stop receiving {}?</p><form method="post" action="{}"><button type="submit">Unsubscribe</button></form>',
            what,
            request.path,
        )
        return _page("Unsubscribe", body)
    source = services.UnsubscribeSource.ONE_CLICK if _is_one_click(request) else services.UnsubscribeSource.PAGE
    outcome = services.message_unsubscribe(message_id=message_id, source=source, recipient=recipient)
    if outcome is None:
        return _not_found()
    return _page("Unsubscribed", format_html("<p>{}</p>", "You have been unsubscribed."))


@require_http_methods(["GET", "HEAD"])
def open_pixel(request, token: str):
    """Always the pixel, whatever the token; records `opened` only for a genuine one."""
    try:
        message_id = message_id_from_open_token(token)
    except BadToken:
        message_id = None
    if message_id is not None and request.method == "GET":
        try:
            services.message_open_record(message_id=message_id, user_agent=request.headers.get("User-Agent"))
        except Exception:  # a tracking failure must never break the image in someone's mail
            logger.exception("Could not record the open of %s", message_id)
    return _no_store(HttpResponse(PIXEL, content_type="image/gif"))


@require_http_methods(["GET", "HEAD"])
def click(request, token: str):
    """302 to the target signed inside the token (nothing else from the request is used)."""
    try:
        message_id, target = click_from_token(token)
    except BadToken:
        return _not_found()
    if request.method == "GET":
        try:
            services.message_click_record(
                message_id=message_id, url=target, user_agent=request.headers.get("User-Agent")
            )
        except Exception:  # the reader still reaches the link when recording fails
            logger.exception("Could not record the click on %s", message_id)
    return _no_store(HttpResponseRedirect(target))
