from django.db import models

from pufferpost.ids import PrefixedIdField
from pufferpost.models import Workspace


class DkimStatus(models.TextChoices):
    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"


class DmarcStatus(models.TextChoices):
    UNKNOWN = "unknown"
    PRESENT = "present"
    MISSING = "missing"


class ReturnPathStatus(models.TextChoices):
    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"


# The return-path (custom MAIL FROM) host of a domain is `bounces.<domain>`. The guide says
# "publish the SPF record at mail.<domain>", but its own example domain is already `mail.acme.com`
# (`mail.mail.acme.com` would read as a typo), and `mail.<domain>` is very often an existing host
# or another sending domain of the same customer, whose MX and SPF would then collide. A label of
# its own names the host's one job and matches the `bounces+…@` local part.
RETURN_PATH_LABEL = "bounces"


def return_path_host_of(domain: str) -> str:
    """`bounces.mail.acme.com` for `mail.acme.com`; "" when the name would exceed 253 characters."""
    host = f"{RETURN_PATH_LABEL}.{domain}"
    return host if len(host) <= 253 else ""


class Domain(models.Model):
    """A sending domain. `verified` is DKIM alone; DMARC is observed, never a gate."""

    id = PrefixedIdField(prefix="dom")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="domains")
    domain = models.CharField(max_length=253)
    selector = models.CharField(max_length=63, blank=True, default="")
    # PEM (PKCS#8) private key; never rendered by the API, the admin or a log line.
    dkim_private_key = models.TextField(blank=True, default="")
    # Base64 DER SubjectPublicKeyInfo, exactly what goes after `p=` in the DNS record.
    dkim_public_key = models.TextField(blank=True, default="")
    dkim_status = models.CharField(max_length=16, choices=DkimStatus.choices, default=DkimStatus.PENDING)
    dmarc_status = models.CharField(max_length=16, choices=DmarcStatus.choices, default=DmarcStatus.UNKNOWN)
    dkim_error = models.CharField(max_length=500, blank=True, default="")
    dmarc_error = models.CharField(max_length=500, blank=True, default="")
    # The return-path host's MX and SPF: advisory like DMARC (never a gate), but delivery uses the
    # host as the envelope domain only while it is verified.
    return_path_status = models.CharField(
        max_length=16, choices=ReturnPathStatus.choices, default=ReturnPathStatus.PENDING
    )
    return_path_error = models.CharField(max_length=500, blank=True, default="")
    # Set once the return path first verified: the inbound server accepts its bounces from then on.
    return_path_verified_at = models.DateTimeField(null=True, blank=True)
    # The DNS doctor: one verdict per published record from the last check (see domains.checks).
    record_checks = models.JSONField(default=list, blank=True)
    # The DMARC record as last parsed (p, sp, pct, rua, adkim, aspf); {} when none was found.
    dmarc_policy = models.JSONField(default=dict, blank=True)
    # DKIM key rotation: a new key under a new selector waits here until its record verifies; then it
    # becomes the signing key, and the old record stays listed ("keep until") for a grace period.
    next_selector = models.CharField(max_length=63, blank=True, default="")
    # PEM like dkim_private_key: never rendered by the API, the admin or a log line.
    next_dkim_private_key = models.TextField(blank=True, default="")
    next_dkim_public_key = models.TextField(blank=True, default="")
    rotation_started_at = models.DateTimeField(null=True, blank=True)
    retired_selector = models.CharField(max_length=63, blank=True, default="")
    retired_dkim_public_key = models.TextField(blank=True, default="")
    retired_keep_until = models.DateTimeField(null=True, blank=True)
    # When DKIM last became verified; set at least once means a later absence is drift, not "pending".
    verified_at = models.DateTimeField(null=True, blank=True)
    # When a verified domain last lost DKIM through drift (the `domain.verification_lost` event).
    verification_lost_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["workspace", "domain"], name="domain_unique_per_workspace")]
        indexes = [models.Index(fields=["domain"], name="domain_name_idx")]

    def __str__(self):
        return self.domain

    @property
    def verified(self) -> bool:
        return self.dkim_status == DkimStatus.VERIFIED

    @property
    def key_issued(self) -> bool:
        return bool(self.dkim_public_key)

    @property
    def dkim_host(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}" if self.selector else ""

    @property
    def rotating(self) -> bool:
        return bool(self.next_dkim_public_key)

    @property
    def next_dkim_host(self) -> str:
        return f"{self.next_selector}._domainkey.{self.domain}" if self.next_selector else ""

    @property
    def retired_dkim_host(self) -> str:
        return f"{self.retired_selector}._domainkey.{self.domain}" if self.retired_selector else ""

    @property
    def dmarc_host(self) -> str:
        return f"_dmarc.{self.domain}"

    @property
    def return_path_host(self) -> str:
        return return_path_host_of(self.domain)

    @property
    def return_path_verified(self) -> bool:
        return self.return_path_status == ReturnPathStatus.VERIFIED
