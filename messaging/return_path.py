"""VERP return paths: the envelope sender of each message names the message, so a bounce sent to it
maps back without guessing. `bounces+msg_01J9…@mail.acme.com` (white-label: the customer's domain).
"""

import re

_LOCAL = "bounces"
_PATTERN = re.compile(rf"^{_LOCAL}\+(msg_[0-9A-HJKMNP-TV-Z]{{26}})@", re.IGNORECASE)


def return_path_for(*, message_id: str, domain: str) -> str:
    return f"{_LOCAL}+{message_id}@{domain}"


def message_id_from_return_path(address: str) -> str | None:
    """The message id in a VERP address (case-insensitive, as some MTAs lowercase it), or None."""
    match = _PATTERN.match(address.strip().strip("<>"))
    return match.group(1).upper().replace("MSG_", "msg_") if match else None
