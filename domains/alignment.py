"""Alignment and DMARC, observed: what receivers make of a domain's mail (advisory, never a gate).

DMARC passes when SPF or DKIM passes *and* aligns with the From domain (RFC 7489 §3.1). DKIM always
aligns here: mail is signed with d=<the from-domain> itself. SPF aligns through the return-path
host `bounces.<domain>` under relaxed alignment (same organizational domain), never under strict
(`aspf=s` wants the identical domain). The 2024 bulk-sender rules of Gmail and Yahoo and
Microsoft's 2025 rule for Outlook.com (mail that misses it is refused with 550 5.7.515) want SPF
and DKIM to pass, a DMARC record (p=none is enough) and alignment of at least one of them.
"""

from domains.checks import organizational_domain
from domains.models import DmarcStatus, Domain, ReturnPathStatus
from domains.selectors import envelope_domain_of


def _aligned(identifier: str, from_domain: str, mode: str) -> bool:
    if mode == "s":
        return identifier == from_domain
    return organizational_domain(identifier) == organizational_domain(from_domain)


def alignment_of(domain: Domain) -> dict:
    policy = dict(domain.dmarc_policy or {})
    adkim, aspf = policy.get("adkim", "r"), policy.get("aspf", "r")
    envelope = envelope_domain_of(domain)
    dkim_passes = domain.verified
    # SPF passes for mail we send only through a verified return-path host (checked by evaluation);
    # the platform-wide return-path domain is the operator's to set up; the from-domain's own SPF
    # authorises the customer's mail provider, not us.
    own_return_path = domain.return_path_status == ReturnPathStatus.VERIFIED and envelope == domain.return_path_host
    spf_passes = own_return_path or (envelope != domain.domain)
    dkim_aligned = _aligned(domain.domain, domain.domain, adkim)
    spf_aligned = _aligned(envelope, domain.domain, aspf)
    has_dmarc = domain.dmarc_status == DmarcStatus.PRESENT and policy.get("p") in ("none", "quarantine", "reject")
    dmarc_passes = (dkim_passes and dkim_aligned) or (spf_passes and spf_aligned)

    missing = []
    if not dkim_passes:
        missing.append("DKIM must pass: publish the DKIM record.")
    if not spf_passes:
        missing.append("SPF must pass for the envelope sender: publish the return-path SPF and MX records.")
    if not has_dmarc:
        missing.append("A DMARC record is required (p=none is enough): publish the DMARC record.")
    if not dmarc_passes:
        missing.append("SPF or DKIM must align with the From domain.")
    verdict = "meets" if not missing else "misses"
    return {
        "dmarc_policy": policy,
        "dkim_aligned": dkim_aligned,
        "dkim_alignment": "strict" if adkim == "s" else "relaxed",
        "spf_domain": envelope,
        "spf_passes": spf_passes,
        "spf_aligned": spf_aligned,
        "spf_alignment": "strict" if aspf == "s" else "relaxed",
        "dmarc_passes": dmarc_passes,
        "receivers": [
            {
                "receiver": "gmail_yahoo_2024",
                "verdict": verdict,
                "missing": missing,
                "note": "Bulk senders (over 5,000 messages a day to Gmail) also need one-click unsubscribe "
                "(sent with every message) and a spam rate under 0.3%.",
            },
            {
                "receiver": "microsoft_2025",
                "verdict": verdict,
                "missing": missing,
                "note": "Outlook.com refuses high-volume mail that misses this with 550 5.7.515.",
            },
        ],
    }
