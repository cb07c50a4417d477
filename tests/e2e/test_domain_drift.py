import pytest

from domains.models import Domain
from tests.domains.factories import publish_dkim
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def test_a_real_worker_and_beat_drop_a_domain_whose_dkim_record_is_removed(processes, make_client, workspace, dns):
    # Beat ticks every second; the worker re-checks any domain it checked over a second ago.
    fast = {
        "PUFFERPOST_DOMAIN_RECHECK_TICK": 1,
        "PUFFERPOST_DOMAIN_RECHECK_VERIFIED": 1,
        "PUFFERPOST_DOMAIN_RECHECK_PENDING": 1,
    }
    worker = processes.worker(**fast)
    beat = processes.beat(**fast)
    api = make_client(workspace, scopes=["domains:manage"])

    response = api.post("/v1/domains", {"domain": "mail.acme.com"}, format="json")
    assert response.status_code == 201
    domain_id = response.json()["id"]

    # The worker issues the signing key; the customer publishes the record it hands out.
    domain = wait_for(
        lambda: Domain.objects.filter(pk=domain_id).exclude(dkim_public_key="").first(),
        what="the DKIM key to be issued",
        processes=(worker, beat),
    )
    dkim = api.get(f"/v1/domains/{domain_id}").json()["dns_records"][0]
    assert dkim["purpose"] == "DKIM"
    publish_dkim(dns, domain)

    # Beat's re-check verifies it without anyone calling refresh ...
    wait_for(lambda: Domain.objects.get(pk=domain_id).verified, what="the domain to verify", processes=(worker, beat))
    # ... and notices when the record disappears.
    dns.remove(domain.dkim_host)
    wait_for(
        lambda: not Domain.objects.get(pk=domain_id).verified,
        what="the domain to fall out of verified",
        processes=(worker, beat),
    )

    lost = Domain.objects.get(pk=domain_id)
    assert lost.dkim_status == "failed"
    assert lost.verification_lost_at is not None
    assert lost.dkim_error == f"No TXT record at {domain.dkim_host}"
    assert api.get(f"/v1/domains/{domain_id}").json()["verified"] is False
    wait_for(lambda: "lost DKIM verification" in worker.log(), what="the loss to be logged", processes=(worker,))
    assert domain.dkim_private_key not in worker.log()
