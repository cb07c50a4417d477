"""Why an address is suppressed, in one sentence for people (the API's `why` and the admin)."""

from messaging.models import SuppressionReason

_CLASS_WORDS = {
    "hard": "a hard bounce (the receiving server says the address cannot receive mail)",
    "expired": "a second expiry in a row (the receiving servers stayed unreachable until the relay gave up)",
}
_REASON_WORDS = {
    SuppressionReason.COMPLAINT: "the recipient reported a message as spam",
    SuppressionReason.UNSUBSCRIBE: "the recipient unsubscribed",
    SuppressionReason.MANUAL: "added by hand",
}


def suppression_why(suppression) -> str:
    detail = suppression.detail or {}
    if suppression.reason == SuppressionReason.BOUNCE:
        words = _CLASS_WORDS.get(detail.get("bounce_class", ""), "a bounce")
        code = " ".join(str(detail[k]) for k in ("basic_code", "enhanced_code") if detail.get(k))
        where = f" from {detail['remote_mta']}" if detail.get("remote_mta") else ""
        said = f": {code} {detail.get('diagnostic', '')}".rstrip() if code or detail.get("diagnostic") else ""
        why = f"Suppressed after {words}{where}{said}"
    else:
        why = f"Suppressed because {_REASON_WORDS.get(suppression.reason, suppression.reason)}"
    if suppression.source_message_id:
        why += f" (message {suppression.source_message_id})"
    return (
        f"{why[:600]}. Remove it with DELETE /v1/suppressions/{{email}} once the address is known to work again; "
        "the next bounce suppresses it again."
        if suppression.reason == SuppressionReason.BOUNCE
        else f"{why[:600]}. Remove it with DELETE /v1/suppressions/{{email}} only if the recipient asked for mail again."
    )
