import datetime
import functools

import factory
from django.conf import settings

from domains.models import DkimStatus
from domains.services import new_dkim_key_pair
from tests.factories import DomainFactory


@functools.cache
def shared_key_pair() -> tuple[str, str]:
    """One RSA key for every factory-made domain: generating 2048-bit keys per row is slow."""
    return new_dkim_key_pair()


class IssuedDomainFactory(DomainFactory):
    """A domain whose signing key has been issued (pending until DNS says otherwise)."""

    selector = factory.LazyFunction(lambda: settings.PUFFERPOST_DKIM_SELECTOR)
    dkim_private_key = factory.LazyFunction(lambda: shared_key_pair()[0])
    dkim_public_key = factory.LazyFunction(lambda: shared_key_pair()[1])


class VerifiedDomainFactory(IssuedDomainFactory):
    dkim_status = DkimStatus.VERIFIED
    verified_at = factory.Faker("past_datetime", tzinfo=datetime.UTC)


def dkim_value(domain, **overrides) -> str:
    tags = {"v": "DKIM1", "k": "rsa", "p": domain.dkim_public_key, **overrides}
    return "; ".join(f"{k}={v}" for k, v in tags.items() if v is not None)


def publish_dkim(dns, domain, **overrides) -> None:
    dns.publish(domain.dkim_host, "TXT", dkim_value(domain, **overrides))


@functools.cache
def another_public_key() -> str:
    """A valid key that is not the domain's: what a customer publishes after a copy-paste mix-up."""
    return new_dkim_key_pair()[1]


def publish_as_told(dns, records: list[dict]) -> None:
    """Publish `dns_records` exactly as the API lists them, as a customer types them in."""
    for record in records:
        if record["type"] == "MX":
            dns.publish(record["host"], "MX", (record["priority"], record["value"]))
        else:
            dns.publish(record["host"], record["type"], record["value"])
