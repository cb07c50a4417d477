"""Reads other apps need from domains: delivery's envelope domain, the inbound server's accepted domains."""

from django.conf import settings

from domains.models import RETURN_PATH_LABEL, Domain, ReturnPathStatus


def envelope_domain_of(domain: Domain) -> str:
    """The domain of the envelope sender (`bounces+…@HERE`) for mail from `domain`.

    The return-path host while it is verified (its MX brings bounces to run_inbound_smtp), else the
    operator's PUFFERPOST_RETURN_PATH_DOMAIN, else the from-domain itself, whose MX is usually the
    customer's own mail provider: then bounces after acceptance never come back (`bounce_warning`).
    Only the domain: the local part (the VERP token) belongs to messaging.return_path.
    """
    if domain.return_path_status == ReturnPathStatus.VERIFIED and domain.return_path_host:
        return domain.return_path_host
    return settings.PUFFERPOST_RETURN_PATH_DOMAIN or domain.domain


def bounce_warning_of(domain: Domain) -> str:
    """Why later bounces of this domain's mail cannot come back; "" when they can."""
    if domain.return_path_status == ReturnPathStatus.VERIFIED or settings.PUFFERPOST_RETURN_PATH_DOMAIN:
        return ""
    if domain.return_path_host and domain.return_path_status == ReturnPathStatus.FAILED:
        why = f"the return path {domain.return_path_host} failed verification"
    elif domain.return_path_host and settings.PUFFERPOST_INBOUND_MX_HOST:
        why = f"the return path {domain.return_path_host} is not verified yet"
    else:
        why = "this installation offers no return path"
    return (
        f"Bounces that arrive after a receiving server first accepted a message cannot come back: {why}, so "
        f"mail is sent with an envelope sender at {domain.domain}, and such bounces go to whatever receives "
        f"mail for {domain.domain}. Those recipients are never suppressed."
        + (" Publish the SPF and RETURN_PATH records, then refresh." if settings.PUFFERPOST_INBOUND_MX_HOST else "")
    )


def return_path_domain_accepted(domain: str) -> bool:
    """Does the inbound server take VERP mail for `domain`? The platform-wide return-path domain, and
    the return-path host of every domain whose return path has verified at least once (bounces of
    mail sent while it was verified may arrive after it drifted)."""
    domain = domain.strip().lower().rstrip(".")
    if settings.PUFFERPOST_RETURN_PATH_DOMAIN and domain == settings.PUFFERPOST_RETURN_PATH_DOMAIN:
        return True
    prefix = f"{RETURN_PATH_LABEL}."
    if not domain.startswith(prefix):
        return False
    return Domain.objects.filter(domain=domain.removeprefix(prefix), return_path_verified_at__isnull=False).exists()
