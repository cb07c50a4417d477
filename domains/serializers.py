from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from domains.models import DkimStatus, DmarcStatus, Domain
from domains.names import InvalidDomainName, normalize_domain_name
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
    records = []
    if domain.key_issued:
        value = f"v=DKIM1; k=rsa; p={domain.dkim_public_key}"
        dkim = {"purpose": "DKIM", "type": "TXT", "host": domain.dkim_host, "value": value}
        if len(value) > 255:
            dkim["note"] = LONG_TXT_NOTE
        records.append(dkim)
    records.append({"purpose": "SPF", "type": "TXT", "host": domain.domain, "value": "v=spf1 mx ~all"})
    records.append({"purpose": "DMARC", "type": "TXT", "host": domain.dmarc_host, "value": "v=DMARC1; p=none;"})
    return records


class DnsRecordSerializer(serializers.Serializer):
    """One DNS record to publish at your DNS provider."""

    purpose = serializers.ChoiceField(choices=["DKIM", "SPF", "DMARC"])
    type = serializers.CharField()
    host = serializers.CharField()
    value = serializers.CharField()
    note = serializers.CharField(required=False, help_text="Present when the value exceeds 255 characters.")


class DomainSerializer(serializers.Serializer):
    id = serializers.CharField()
    domain = serializers.CharField()
    verified = serializers.BooleanField()
    dkim_status = serializers.ChoiceField(choices=DkimStatus.choices)
    dmarc_status = serializers.ChoiceField(choices=DmarcStatus.choices)
    dkim_error = serializers.SerializerMethodField()
    dmarc_error = serializers.SerializerMethodField()
    dns_records = serializers.SerializerMethodField()
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
