import base64
import logging

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from domains import tasks
from domains.models import Domain
from pufferpost import celery_app
from tests.factories import DomainFactory


def test_the_task_issues_an_rsa_2048_key_pair(workspace):
    domain = DomainFactory(workspace=workspace)

    tasks.issue_dkim_key.delay(domain.id)

    domain.refresh_from_db()
    private = serialization.load_pem_private_key(domain.dkim_private_key.encode(), password=None)
    assert domain.dkim_private_key.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    public = serialization.load_der_public_key(base64.b64decode(domain.dkim_public_key))
    assert public.public_numbers() == private.public_key().public_numbers()
    assert domain.selector == "mlr1"
    assert domain.next_check_at is not None


def test_issuing_twice_keeps_the_first_key(workspace):
    domain = DomainFactory(workspace=workspace)
    tasks.issue_dkim_key.delay(domain.id)
    first = Domain.objects.get(pk=domain.pk).dkim_public_key

    tasks.issue_dkim_key.delay(domain.id)

    assert Domain.objects.get(pk=domain.pk).dkim_public_key == first


def test_issuing_for_a_deleted_domain_is_a_no_op(db):
    tasks.issue_dkim_key.delay("dom_01J9Z3K7Q2N8M4V6XB0R5T9AHC")


def test_the_selector_comes_from_settings(api, settings, django_capture_on_commit_callbacks):
    settings.PUFFERPOST_DKIM_SELECTOR = "s2026"
    with django_capture_on_commit_callbacks(execute=True):
        domain_id = api.post("/v1/domains", {"domain": "mail.acme.com"}, format="json").json()["id"]
    dkim = api.get(f"/v1/domains/{domain_id}").json()["dns_records"][0]
    assert dkim["host"] == "s2026._domainkey.mail.acme.com"


def test_domain_tasks_route_to_the_domains_queue():
    for name in ("domains.tasks.issue_dkim_key", "domains.tasks.recheck_due_domains"):
        assert name in celery_app.tasks
        route = celery_app.amqp.router.route({}, name)
        assert route["queue"].name == "domains"


def test_the_private_key_is_never_logged(api, dns, caplog, django_capture_on_commit_callbacks):
    with caplog.at_level(logging.DEBUG), django_capture_on_commit_callbacks(execute=True):
        domain_id = api.post("/v1/domains", {"domain": "mail.acme.com"}, format="json").json()["id"]
        api.post(f"/v1/domains/{domain_id}/refresh", {}, format="json")
    private = Domain.objects.get(pk=domain_id).dkim_private_key
    assert "Issued the DKIM signing key" in caplog.text
    for line in private.splitlines()[1:-1]:
        assert line not in caplog.text
