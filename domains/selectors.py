"""Reads other apps need from domains (the send path, delivery's DKIM signer)."""

from domains.models import DkimStatus, Domain


def domain_verified_for_address(*, workspace_id: str, address: str) -> Domain | None:
    """The workspace's verified domain for a from-address (`receipts@mail.acme.com`), or None.

    Only the exact domain after the `@` counts: verifying acme.com does not verify mail.acme.com.
    The returned row carries the private key, for signing; never render it.
    """
    _, _, domain = address.rpartition("@")
    return Domain.objects.filter(
        workspace_id=workspace_id, domain=domain.strip().lower().rstrip("."), dkim_status=DkimStatus.VERIFIED
    ).first()
