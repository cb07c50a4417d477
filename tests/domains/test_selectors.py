from domains.selectors import domain_verified_for_address
from tests.domains.factories import IssuedDomainFactory, VerifiedDomainFactory


def test_the_verified_domain_of_an_address_is_found_in_its_workspace_only(workspace, other_workspace):
    domain = VerifiedDomainFactory(workspace=workspace, domain="mail.acme.com")
    VerifiedDomainFactory(workspace=other_workspace, domain="other.acme.com")
    IssuedDomainFactory(workspace=workspace, domain="pending.acme.com")

    assert domain_verified_for_address(workspace_id=workspace.id, address="Receipts@MAIL.acme.com") == domain
    assert domain_verified_for_address(workspace_id=workspace.id, address="a@pending.acme.com") is None
    assert domain_verified_for_address(workspace_id=workspace.id, address="a@other.acme.com") is None
    assert domain_verified_for_address(workspace_id=workspace.id, address="a@acme.com") is None
    assert domain_verified_for_address(workspace_id=other_workspace.id, address="a@mail.acme.com") is None
