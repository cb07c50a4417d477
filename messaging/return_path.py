"""VERP return paths: the envelope sender of each message names the message, so a bounce sent to it
maps back without guessing. `bounces+msg_01J9…@mail.acme.com` (white-label: the customer's domain,
or PUFFERPOST_RETURN_PATH_DOMAIN, whose MX reaches `run_inbound_smtp`).
"""

import re

from django.conf import settings

_LOCAL = "bounces"
_PATTERN = re.compile(rf"^{_LOCAL}\+msg_([0-9A-HJKMNP-TV-Z]{{26}})@[^@\s]+$", re.IGNORECASE)


def return_path_for(*, message_id: str, from_address: str = "", domain: str = "") -> str:
    # `domain` is the sending domain's choice (domains.selectors.envelope_domain_of); this module
    # owns only the local part.
    domain = domain or settings.PUFFERPOST_RETURN_PATH_DOMAIN or from_address.rpartition("@")[2]
    return f"{_LOCAL}+{message_id}@{domain}"


def message_id_from_return_path(address: str) -> str | None:
    """The message id in a VERP address (case-insensitive, as some MTAs lowercase it), or None."""
    match = _PATTERN.match(address.strip().strip("<>"))
    # ULIDs are upper case; some MTAs lower-case the local part on the way back.
    return f"msg_{match.group(1).upper()}" if match else None
