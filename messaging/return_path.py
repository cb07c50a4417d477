"""VERP return paths: the envelope sender of each message names the message, so a bounce sent to it
maps back without guessing. `bounces+msg_01J9…+k7f3q2xj4a@mail.acme.com` (white-label: the
customer's domain, or PUFFERPOST_RETURN_PATH_DOMAIN, whose MX reaches `run_inbound_smtp`).

The local part carries a tag, an HMAC of the message id under the secret key, so nobody who only
knows a message id (it is in every Message-ID header) can forge a bounce or a complaint for it:
the inbound server refuses a return path whose tag does not verify (550). Un-tagged addresses from
before the tag existed are refused the same way; their real DSNs still map through the returned
headers' Message-ID when sent to a feedback address. The local part is 49 characters (RFC 5321
allows 64). Which *domains* are accepted is a separate check (messaging.feedback.smtp).
"""

import base64
import hashlib
import hmac
import re

from django.conf import settings

_LOCAL = "bounces"
_TAG_LENGTH = 10  # 50 bits of base32: forging one address takes ~2^49 tries, each an SMTP RCPT
_LOCAL_PART = re.compile(rf"^{_LOCAL}\+msg_([0-9A-HJKMNP-TV-Z]{{26}})\+([a-z2-7]{{{_TAG_LENGTH}}})$", re.IGNORECASE)


def return_path_for(*, message_id: str, from_address: str = "", domain: str = "") -> str:
    # `domain` is the sending domain's choice (domains.selectors.envelope_domain_of); this module
    # owns only the local part.
    domain = domain or settings.PUFFERPOST_RETURN_PATH_DOMAIN or from_address.rpartition("@")[2]
    return f"{verp_local_part(message_id=message_id)}@{domain}"


def verp_local_part(*, message_id: str) -> str:
    return f"{_LOCAL}+{message_id}+{_tag(message_id, settings.SECRET_KEY)}"


def message_id_from_return_path(address: str) -> str | None:
    """The message id in a VERP address whose tag verifies (case-insensitive: some MTAs lowercase
    local parts on the way back), else None. Only the local part is judged here."""
    local_part = address.strip().strip("<>").rpartition("@")[0]
    match = _LOCAL_PART.match(local_part)
    if match is None:
        return None
    message_id = f"msg_{match.group(1).upper()}"
    tag = match.group(2).lower()
    # Keys being rotated out (SECRET_KEY_FALLBACKS) still verify the tags of mail already sent.
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if any(hmac.compare_digest(tag, _tag(message_id, key)) for key in keys):
        return message_id
    return None


def _tag(message_id: str, key: str) -> str:
    digest = hmac.new(
        hashlib.sha256(f"pufferpost.verp:{key}".encode()).digest(), message_id.encode(), hashlib.sha256
    ).digest()
    return base64.b32encode(digest).decode()[:_TAG_LENGTH].lower()
