import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing

_UNSUBSCRIBE = "pufferpost.unsubscribe"
# A cc recipient's own copy carries a token naming that address too (#15 item 12): a cc can opt
# only itself out, never the `to` recipient, whose token (the message id alone) it never sees.
_UNSUBSCRIBE_CC = "pufferpost.unsubscribe.cc"
_OPEN = "pufferpost.open"
_CLICK = "pufferpost.click"


def _url(path: str) -> str:
    return f"{settings.PUFFERPOST_PUBLIC_URL}{path}"


def unsubscribe_token(message_id: str, recipient: str | None = None) -> str:
    """The `to` recipient's token (the signed message id), or a cc recipient's (id and address)."""
    if recipient is None:
        return signing.Signer(salt=_UNSUBSCRIBE).sign(message_id)
    return signing.Signer(salt=_UNSUBSCRIBE_CC).sign_object([message_id, recipient], compress=True)


def unsubscribe_url(message_id: str, recipient: str | None = None) -> str:
    """The RFC 8058 one-click target: a POST to it (no cookies, no auth) opts the recipient out.

    Without `recipient` it opts out the message's `to`; with a cc address, only that address.
    """
    return _url(f"/u/{unsubscribe_token(message_id, recipient)}")


def open_url(message_id: str) -> str:
    return _url(f"/t/o/{signing.Signer(salt=_OPEN).sign(message_id)}.gif")


def click_url(message_id: str, target: str) -> str:
    return _url(f"/t/c/{signing.dumps([message_id, target], salt=_CLICK, compress=True)}")


class BadToken(Exception):
    pass


def message_id_from_unsubscribe_token(token: str) -> str:
    return unsubscribe_from_token(token)[0]


def unsubscribe_from_token(token: str) -> tuple[str, str | None]:
    """(message id, cc address) from an unsubscribe token; the address is None for `to`'s token."""
    try:
        return _unsign(_UNSUBSCRIBE, token), None
    except BadToken:
        pass
    try:
        value = signing.Signer(salt=_UNSUBSCRIBE_CC).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise BadToken(str(exc)) from exc
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise BadToken("not an unsubscribe token")
    return value[0], value[1]


def message_id_from_open_token(token: str) -> str:
    return _unsign(_OPEN, token.removesuffix(".gif"))


def click_from_token(token: str) -> tuple[str, str]:
    """(message id, target URL) from a click token; BadToken when forged, altered or not http(s)."""
    try:
        message_id, target = signing.loads(token, salt=_CLICK)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise BadToken(str(exc)) from exc
    if not _is_web_url(target):
        raise BadToken("not an http(s) target")
    return message_id, target


def _unsign(salt: str, token: str) -> str:
    try:
        return signing.Signer(salt=salt).unsign(token)
    except signing.BadSignature as exc:
        raise BadToken(str(exc)) from exc


def _is_web_url(value) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'\s<>]+)\2""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def instrument_html(html: str, *, message_id: str, opens: bool, clicks: bool) -> str:
    """Rewrite http(s) links through the click redirect and append the open pixel, as switched on.

    The unsubscribe link itself is never rewritten (it is not http(s) to an outside site anyway
    when it points at this installation, but customers may put their own preference links in).
    """
    if clicks:
        own = settings.PUFFERPOST_PUBLIC_URL

        def rewrite(match):
            target = match.group(3).replace("&amp;", "&")
            if target.startswith(own):
                return match.group(0)
            quote = match.group(2)
            return f"{match.group(1)}{quote}{click_url(message_id, target)}{quote}"

        html = _HREF.sub(rewrite, html)
    if opens:
        pixel = f'<img src="{open_url(message_id)}" width="1" height="1" alt="" style="display:none">'
        html, replaced = _BODY_END.subn(lambda m: pixel + m.group(0), html, count=1)
        if not replaced:
            html += pixel
    return html
