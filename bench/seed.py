"""The bench's own database and Redis prefix, and the workspace every workload sends from.

The database (default `pufferpost_bench`) is dropped and re-created at the start of every run,
so dev and test data are never touched and every run starts from the same empty state.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

SELECTOR = "mlr1"
SENDER_DOMAIN = "mail.bench.test"
RECIPIENT_DOMAIN = "example.test"
SENDERS = 4
TEMPLATES = 10

SUBJECT = "Your order {{ order.number }} is confirmed, {{ name }}"
HTML = """<!doctype html><html><body style="font-family:Arial,sans-serif;background:#f4f4f7;margin:0;padding:0">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center" style="padding:24px">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="background:#ffffff;border-radius:8px">
<tr><td style="padding:32px 40px 8px 40px"><h1 style="font-size:22px;color:#1f2937;margin:0">Thanks for your order, {{ name }}!</h1></td></tr>
<tr><td style="padding:8px 40px;color:#4b5563;font-size:15px;line-height:22px">
We have received order <strong>{{ order.number }}</strong> placed on {{ order.placed }} and we are getting it ready.
You will get another email with the tracking link as soon as your parcel leaves our warehouse.</td></tr>
<tr><td style="padding:16px 40px"><table role="presentation" width="100%" cellpadding="6" cellspacing="0" style="border-collapse:collapse;font-size:14px;color:#374151">
<tr style="background:#f9fafb"><th align="left">Item</th><th align="right">Qty</th><th align="right">Price</th></tr>
{% for line in order.lines %}<tr style="border-top:1px solid #e5e7eb"><td>{{ line.title }}<br><span style="color:#9ca3af;font-size:12px">SKU {{ line.sku }}</span></td><td align="right">{{ line.qty }}</td><td align="right">{{ line.price }} {{ order.currency }}</td></tr>
{% endfor %}<tr style="border-top:2px solid #d1d5db"><td colspan="2" align="right"><strong>Total</strong></td><td align="right"><strong>{{ order.total }} {{ order.currency }}</strong></td></tr>
</table></td></tr>
<tr><td style="padding:8px 40px;color:#4b5563;font-size:14px;line-height:21px">Shipping to:<br>{{ address.line1 }}<br>{{ address.zip }} {{ address.city }}<br>{{ address.country }}</td></tr>
<tr><td style="padding:16px 40px"><a href="https://shop.example.test/orders/{{ order.number }}" style="background:#2563eb;color:#fff;padding:12px 20px;border-radius:6px;text-decoration:none;font-size:15px">View your order</a></td></tr>
<tr><td style="padding:24px 40px 32px 40px;color:#9ca3af;font-size:12px;line-height:18px">Questions? Reply to this email or visit our help centre.
You receive this email because you placed an order at Bench Shop. Bench Shop, 1 Example Street, 12345 Example City.</td></tr>
</table></td></tr></table></body></html>"""
TEXT = """Thanks for your order, {{ name }}!

Order {{ order.number }} placed on {{ order.placed }}:
{% for line in order.lines %}- {{ line.qty }} x {{ line.title }} (SKU {{ line.sku }}): {{ line.price }} {{ order.currency }}
{% endfor %}Total: {{ order.total }} {{ order.currency }}

Shipping to {{ address.line1 }}, {{ address.zip }} {{ address.city }}, {{ address.country }}.
View your order: https://shop.example.test/orders/{{ order.number }}
"""


def send_data(i: int) -> dict:
    """The render variables of one realistic order confirmation (about 1 KB of JSON)."""
    lines = [
        {
            "title": f"Organic cotton T-shirt, size {size}",
            "sku": f"TS-{i % 97:03d}-{size}",
            "qty": 1 + n % 3,
            "price": "24.90",
        }
        for n, size in enumerate(("S", "M", "L", "XL"))
    ]
    return {
        "name": f"Customer {i}",
        "order": {
            "number": f"O-{100000 + i}",
            "placed": "2026-11-24",
            "currency": "EUR",
            "total": "149.40",
            "lines": lines,
        },
        "address": {"line1": f"{i} Sample Road", "zip": "10115", "city": "Berlin", "country": "Germany"},
    }


@dataclass
class Fixture:
    workspace_id: str
    api_key: str
    template_id: str
    template_version_pk: int
    from_address: str
    domain: str
    private_key_pem: str
    public_key_b64: str
    sender_ids: list[str] = field(default_factory=list)
    from_addresses: list[str] = field(default_factory=list)
    template_ids: list[str] = field(default_factory=list)
    template_version_pks: list[int] = field(default_factory=list)


def _admin_dsn(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))


def reset_database(url: str, name: str) -> None:
    if not name.startswith("pufferpost_bench"):
        raise SystemExit(f"refusing to drop {name!r}: the bench only drops databases named pufferpost_bench*")
    with psycopg.connect(_admin_dsn(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str, name: str) -> None:
    if not name.startswith("pufferpost_bench"):
        return
    connection.close()
    with psycopg.connect(_admin_dsn(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate() -> None:
    from bench.ceiling import CREATE_TABLE

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        cursor.execute(CREATE_TABLE)


def clean_redis(prefix: str) -> int:
    """Delete every key under the bench's prefix (its queues, rate-limit and quota counters)."""
    if not prefix.startswith("pp-bench"):
        raise SystemExit(f"refusing to clean Redis prefix {prefix!r}")
    client = redis.Redis.from_url(settings.REDIS_URL)
    deleted = 0
    for _ in range(1000):  # bounded: 1000 × 1000 keys
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))[:1000]
        if not keys:
            break
        deleted += client.delete(*keys)
    return deleted


def seed() -> Fixture:
    """One workspace without limits that matter here, a verified domain, active senders, templates."""
    from domains.models import DkimStatus, Domain
    from domains.services import new_dkim_key_pair
    from pufferpost.models import Workspace
    from pufferpost.services import api_key_create
    from senders.models import Sender, SenderState
    from templates_app.models import Template, TemplateVersion

    now = timezone.now()
    workspace = Workspace.objects.create(
        name="Bench", rate_limit_per_minute=100_000_000, monthly_quota=100_000_000, default_locale="en"
    )
    _, raw_key = api_key_create(workspace=workspace, name="bench")
    private_pem, public_b64 = new_dkim_key_pair()
    Domain.objects.create(
        workspace=workspace,
        domain=SENDER_DOMAIN,
        selector=SELECTOR,
        dkim_private_key=private_pem,
        dkim_public_key=public_b64,
        dkim_status=DkimStatus.VERIFIED,
        verified_at=now,
        next_check_at=now + timedelta(days=30),
    )
    senders = [
        Sender.objects.create(
            workspace=workspace,
            from_address=f"{local}@{SENDER_DOMAIN}",
            display_name="Bench Shop",
            state=SenderState.ACTIVE,
        )
        for local in ("orders", "billing", "news", "support")[:SENDERS]
    ]
    templates, versions = [], []
    for n in range(TEMPLATES):
        template = Template.objects.create(
            workspace=workspace, name=f"Order confirmation {n}", slug=f"order-confirmation-{n}", latest_version=1
        )
        versions.append(
            TemplateVersion.objects.create(template=template, version=1, subject=SUBJECT, html=HTML, text=TEXT)
        )
        templates.append(template)
    return Fixture(
        workspace_id=workspace.id,
        api_key=raw_key,
        template_id=templates[0].id,
        template_version_pk=versions[0].pk,
        from_address=senders[0].from_address,
        domain=SENDER_DOMAIN,
        private_key_pem=private_pem,
        public_key_b64=public_b64,
        sender_ids=[s.id for s in senders],
        from_addresses=[s.from_address for s in senders],
        template_ids=[t.id for t in templates],
        template_version_pks=[v.pk for v in versions],
    )


def send_body(fixture: Fixture, i: int) -> dict:
    """The body of one POST /v1/messages: a templated order confirmation with metadata."""
    return {
        "from": fixture.from_address,
        "to": f"rcpt{i}@{RECIPIENT_DOMAIN}",
        "templateId": fixture.template_id,
        "data": send_data(i),
        "metadata": {"order_id": f"O-{100000 + i}", "source": "bench"},
        "locale": "en",
        "timezone": "Europe/Berlin",
    }


def send_body_from_dict(fixture: dict, i: int) -> dict:
    """`send_body` for a fixture passed to a child process as a plain dict."""
    return send_body(Fixture(**fixture), i)
