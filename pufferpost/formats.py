"""The one way each app writes a timestamp and normalises an email address."""

from datetime import UTC, datetime


def utc_timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with an explicit offset, seconds precision: `2026-06-09T10:15:00+00:00`.

    API responses, webhook payloads and the schema all use this form.
    """
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def normalise_address(address: str) -> str:
    """An email address as it is stored and compared: trimmed and lowercased."""
    return address.strip().lower()
