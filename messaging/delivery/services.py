"""Delivery services. The body of `deliver_messages` belongs to the delivery issue (#4)."""


def deliver_messages(*, message_ids: list[str]) -> None:
    """Claim, render, sign and send each of `message_ids`; messages already past `accepted` are skipped."""
    return None
