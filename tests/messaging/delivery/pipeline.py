"""A workspace that can deliver: verified domain with its DKIM record published, an active sender
with a display name, a template version; and DNS sending example.com/example.org mail to loopback."""

import subprocess
from email import message_from_bytes, policy
from pathlib import Path
from types import SimpleNamespace

import dkim as dkimpy

from messaging.models import MessageEvent
from tests.factories import TemplateFactory, TemplateVersionFactory
from tests.messaging.factories import ActiveSenderFactory, MessageFactory, VerifiedDomainFactory

FROM_DOMAIN = "mail.acme.test"
FROM = f"receipts@{FROM_DOMAIN}"
PERL_VERIFIER = Path(__file__).with_name("verify_dkim.pl")


def publish_routes(zone, *domains):
    """MX for each recipient domain → mx.<domain> → 127.0.0.1 (the sink listens on PUFFERPOST_SMTP_PORT)."""
    for domain in domains:
        zone.publish(domain, "MX", (10, f"mx.{domain}"))
        zone.publish(f"mx.{domain}", "A", "127.0.0.1")


def make_sendable(workspace, zone):
    domain = VerifiedDomainFactory(workspace=workspace, domain=FROM_DOMAIN)
    zone.publish(f"{domain.selector}._domainkey.{FROM_DOMAIN}", "TXT", f"v=DKIM1; k=rsa; p={domain.dkim_public_key}")
    publish_routes(zone, "example.com", "example.org")
    sender = ActiveSenderFactory(workspace=workspace, from_address=FROM, display_name="Acme Shop")
    template = TemplateFactory(workspace=workspace, name="Order confirmation", slug="order-confirmation")
    version = TemplateVersionFactory(
        template=template,
        version=1,
        subject="Order {{ order_id }} confirmed",
        html='<html><body><p>Hello {{ name }}</p><a href="https://shop.example.net/o/9">Your order</a></body></html>',
        text="Hello {{ name }}, your order {{ order_id }} is confirmed.",
    )
    template.latest_version = 1
    template.save()

    def message(**fields):
        fields.setdefault("data", {"name": "Jane", "order_id": "o_9"})
        return MessageFactory(workspace=workspace, sender=sender, template=template, template_version=version, **fields)

    return SimpleNamespace(
        workspace=workspace, domain=domain, sender=sender, template=template, version=version, message=message
    )


def timeline(message_id) -> list[str]:
    return list(
        MessageEvent.objects.filter(message_id=message_id).order_by("occurred_at", "id").values_list("type", flat=True)
    )


def parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def dkimpy_verifies(raw: bytes, domain) -> bool:
    txt = f"v=DKIM1; k=rsa; p={domain.dkim_public_key}".encode()
    return dkimpy.verify(raw, dnsfunc=lambda name, timeout=5: txt)


def perl_verifies(raw: bytes, nameserver: tuple[str, int]) -> list[str]:
    """Mail::DKIM's verdicts, the key fetched from the loopback DNS (the record must be published)."""
    host, port = nameserver
    proc = subprocess.run(["perl", str(PERL_VERIFIER), host, str(port)], input=raw, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    return [line.split("\t")[0] for line in proc.stdout.decode().splitlines()]
