from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from domains import records
from domains.alignment import alignment_of
from domains.models import DkimStatus, DmarcStatus, Domain, ReturnPathStatus
from domains.names import InvalidDomainName, normalize_domain_name
from domains.selectors import bounce_warning_of, envelope_domain_of
from pufferpost.serializers import StrictSerializer, TimestampField

# A 2048-bit key's record is about 400 characters, over the 255-character limit of one TXT string.
LONG_TXT_NOTE = (
    "This value is longer than 255 characters, the limit of a single TXT string. Publish it whole as "
    "one record: most DNS providers split it into several quoted strings for you, and if yours asks you "
    "to, split it yourself. Receivers join the strings back into one value."
)


class DomainNameField(serializers.CharField):
    """A domain name, trimmed, lowercased and syntax-checked; every refusal has code `invalid_domain`."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return normalize_domain_name(value)
        except InvalidDomainName as exc:
            raise serializers.ValidationError(str(exc), code="invalid_domain")


class DomainCreateSerializer(StrictSerializer):
    domain = DomainNameField()


class RefreshSerializer(StrictSerializer):
    """Refresh takes no fields; `{}` or an empty body."""


def dns_records_of(domain: Domain) -> list[dict]:
    """The records the customer publishes; each names only their own domain (white-label)."""
    found = records.records_of(
        domain=domain.domain,
        dkim_host=domain.dkim_host,
        public_key=domain.dkim_public_key,
        return_path_host=domain.return_path_host,
        next_dkim_host=domain.next_dkim_host,
        next_public_key=domain.next_dkim_public_key,
        retired_dkim_host=domain.retired_dkim_host,
        retired_public_key=domain.retired_dkim_public_key,
        retired_keep_until=domain.retired_keep_until,
    )
    for record in found:
        if record["purpose"] == "DKIM" and len(record["value"]) > 255:
            record["note"] = LONG_TXT_NOTE
    return found


class DnsRecordSerializer(serializers.Serializer):
    """One DNS record to publish at your DNS provider."""

    purpose = serializers.ChoiceField(choices=["DKIM", "SPF", "DMARC", "RETURN_PATH"])
    type = serializers.ChoiceField(choices=["TXT", "MX"])
    host = serializers.CharField()
    value = serializers.CharField()
    priority = serializers.IntegerField(required=False, help_text="MX records only: the preference to enter.")
    state = serializers.ChoiceField(
        choices=["active", "pending", "retiring"],
        required=False,
        help_text=(
            "DKIM during a key rotation only: `active` signs now; `pending` is the new key (signing moves "
            "to it once it verifies); `retiring` is the old key, to keep published until `keep_until`."
        ),
    )
    keep_until = serializers.CharField(required=False, help_text="`retiring` records: delete the record after this.")
    note = serializers.CharField(required=False, help_text="Present when the value exceeds 255 characters.")


class RecordCheckSerializer(serializers.Serializer):
    """The DNS doctor's verdict on one record, from the last check."""

    purpose = serializers.ChoiceField(choices=["DKIM", "SPF", "DMARC", "RETURN_PATH"])
    type = serializers.ChoiceField(choices=["TXT", "MX"])
    host = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["ok", "warning", "missing", "wrong", "unreachable", "pending"],
        help_text="`unreachable`: DNS did not answer (timeout, SERVFAIL), which says nothing about the record.",
    )
    problem = serializers.CharField(
        help_text=(
            "A stable code, empty when ok: nxdomain, no_record, cname, wrong_host, wrong_value, key_mismatch, "
            "key_truncated, split_wrongly, testing_mode, revoked, several_records, duplicate_spf, "
            "too_many_lookups, invalid_spf, duplicate_dmarc, invalid_dmarc, other_mx, null_mx, dns_timeout, "
            "dns_servfail, dns_error, no_key."
        )
    )
    message = serializers.CharField(help_text="What is wrong and what to do, in words; empty when ok.")
    expected = serializers.CharField(help_text="The value to publish.")
    found = serializers.ListField(child=serializers.CharField(), help_text="What DNS holds there now.")


class DmarcPolicySerializer(serializers.Serializer):
    """The published DMARC policy, RFC 7489's defaults filled in; `{}` when no record was found."""

    p = serializers.CharField(required=False)
    sp = serializers.CharField(required=False)
    pct = serializers.IntegerField(required=False)
    rua = serializers.ListField(child=serializers.CharField(), required=False)
    adkim = serializers.ChoiceField(choices=["r", "s"], required=False)
    aspf = serializers.ChoiceField(choices=["r", "s"], required=False)
    inherited_from = serializers.CharField(
        required=False, help_text="Present when the policy is the organizational domain's (its sp=)."
    )


class ReceiverVerdictSerializer(serializers.Serializer):
    receiver = serializers.ChoiceField(choices=["gmail_yahoo_2024", "microsoft_2025"])
    verdict = serializers.ChoiceField(choices=["meets", "misses"])
    missing = serializers.ListField(child=serializers.CharField())
    note = serializers.CharField()


class AuthenticationSerializer(serializers.Serializer):
    """Alignment and DMARC as receivers see this domain's mail (advisory: never blocks a send)."""

    dmarc_policy = DmarcPolicySerializer()
    dkim_aligned = serializers.BooleanField(help_text="Always: mail is signed with d=<this domain>.")
    dkim_alignment = serializers.ChoiceField(choices=["relaxed", "strict"])
    spf_domain = serializers.CharField(help_text="The envelope domain SPF is evaluated for.")
    spf_passes = serializers.BooleanField()
    spf_aligned = serializers.BooleanField()
    spf_alignment = serializers.ChoiceField(choices=["relaxed", "strict"])
    dmarc_passes = serializers.BooleanField()
    receivers = ReceiverVerdictSerializer(many=True)


class DomainSerializer(serializers.Serializer):
    id = serializers.CharField()
    domain = serializers.CharField()
    verified = serializers.BooleanField()
    dkim_status = serializers.ChoiceField(choices=DkimStatus.choices)
    dmarc_status = serializers.ChoiceField(choices=DmarcStatus.choices)
    dkim_error = serializers.SerializerMethodField()
    dmarc_error = serializers.SerializerMethodField()
    dns_records = serializers.SerializerMethodField()
    return_path_host = serializers.SerializerMethodField()
    return_path_status = serializers.ChoiceField(
        choices=ReturnPathStatus.choices,
        help_text="The return-path host's MX and SPF (advisory: never blocks sending).",
    )
    return_path_error = serializers.SerializerMethodField()
    bounce_domain = serializers.SerializerMethodField()
    bounce_warning = serializers.SerializerMethodField()
    record_checks = serializers.SerializerMethodField()
    authentication = serializers.SerializerMethodField()
    created_at = TimestampField()
    updated_at = TimestampField()
    last_checked_at = TimestampField(allow_null=True)

    def get_dkim_error(self, domain) -> str | None:
        return domain.dkim_error or None

    def get_dmarc_error(self, domain) -> str | None:
        return domain.dmarc_error or None

    @extend_schema_field(DnsRecordSerializer(many=True))
    def get_dns_records(self, domain):
        return dns_records_of(domain)

    def get_return_path_host(self, domain) -> str | None:
        """The custom MAIL FROM host, `bounces.<domain>`; null when this installation offers none."""
        return domain.return_path_host if records.return_path_offered() and domain.return_path_host else None

    def get_return_path_error(self, domain) -> str | None:
        return domain.return_path_error or None

    def get_bounce_domain(self, domain) -> str:
        """The domain of the envelope sender mail from this domain uses now (`bounces+…@<this>`)."""
        return envelope_domain_of(domain)

    def get_bounce_warning(self, domain) -> str | None:
        """Set when bounces after acceptance cannot come back to the platform."""
        return bounce_warning_of(domain) or None

    @extend_schema_field(RecordCheckSerializer(many=True))
    def get_record_checks(self, domain):
        return domain.record_checks

    @extend_schema_field(AuthenticationSerializer)
    def get_authentication(self, domain):
        return alignment_of(domain)
