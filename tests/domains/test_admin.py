from domains.models import Domain
from tests.domains.factories import IssuedDomainFactory, VerifiedDomainFactory, publish_dkim

CHANGELIST = "/admin/domains/domain/"


def test_the_changelist_shows_statuses_and_workspace(admin_client, workspace):
    domain = VerifiedDomainFactory(workspace=workspace, domain="mail.acme.com")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "mail.acme.com" in html
    assert workspace.name in html
    assert domain.dkim_status in html


def test_search_by_domain_and_by_workspace(admin_client, workspace, other_workspace):
    IssuedDomainFactory(workspace=workspace, domain="ours.acme.com")
    IssuedDomainFactory(workspace=other_workspace, domain="theirs.example.com")

    by_domain = admin_client.get(CHANGELIST, {"q": "ours.acme"}).content.decode()
    by_workspace = admin_client.get(CHANGELIST, {"q": other_workspace.name}).content.decode()

    assert "ours.acme.com" in by_domain and "theirs.example.com" not in by_domain
    assert "theirs.example.com" in by_workspace and "ours.acme.com" not in by_workspace


def test_filter_by_status(admin_client, workspace):
    VerifiedDomainFactory(workspace=workspace, domain="good.acme.com")
    IssuedDomainFactory(workspace=workspace, domain="waiting.acme.com")
    html = admin_client.get(CHANGELIST, {"dkim_status__exact": "verified"}).content.decode()
    assert "good.acme.com" in html and "waiting.acme.com" not in html


def test_the_change_page_never_shows_the_private_key(admin_client, workspace):
    domain = IssuedDomainFactory(workspace=workspace)
    response = admin_client.get(f"{CHANGELIST}{domain.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "PRIVATE KEY" not in html
    assert "dkim_private_key" not in html
    assert domain.dkim_private_key.splitlines()[1] not in html
    assert domain.dkim_public_key[:40] in html


def test_staff_cannot_add_a_domain_without_the_api(admin_client):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def test_recheck_now_checks_the_selected_domains(admin_client, workspace, dns):
    published = IssuedDomainFactory(workspace=workspace)
    missing = IssuedDomainFactory(workspace=workspace)
    untouched = IssuedDomainFactory(workspace=workspace)
    publish_dkim(dns, published)

    response = admin_client.post(
        CHANGELIST,
        {"action": "recheck_now", "_selected_action": [published.pk, missing.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Re-checked 2 domain(s)." in [str(m) for m in response.context["messages"]]
    assert Domain.objects.get(pk=published.pk).verified
    assert Domain.objects.get(pk=missing.pk).last_checked_at is not None
    assert Domain.objects.get(pk=untouched.pk).last_checked_at is None


def test_the_change_page_shows_the_dns_doctor(admin_client, workspace, dns):
    from domains.services import domain_refresh

    domain = IssuedDomainFactory(workspace=workspace, domain="mail.acme.com")
    dns.publish("mlr1._domainkey.mail.acme.com.acme.com", "TXT", f"v=DKIM1; k=rsa; p={domain.dkim_public_key}")
    domain_refresh(domain=domain)
    html = admin_client.get(f"{CHANGELIST}{domain.pk}/change/").content.decode()
    assert "DNS doctor" in html
    assert "wrong_host" in html and "Enter the host as mlr1._domainkey.mail" in html
    assert "bounces.mail.acme.com" in html and "nxdomain" in html


def test_filter_by_return_path_status(admin_client, workspace):
    IssuedDomainFactory(workspace=workspace, domain="rp-ok.acme.com", return_path_status="verified")
    IssuedDomainFactory(workspace=workspace, domain="rp-waiting.acme.com")
    html = admin_client.get(CHANGELIST, {"return_path_status__exact": "verified"}).content.decode()
    assert "rp-ok.acme.com" in html and "rp-waiting.acme.com" not in html
