from celery import shared_task


@shared_task(name="domains.tasks.issue_dkim_key")
def issue_dkim_key(domain_id: str) -> None:
    """Generate the domain's RSA signing key (a no-op once issued)."""
    from domains.services import domain_issue_dkim_key

    domain_issue_dkim_key(domain_id=domain_id)


@shared_task(name="domains.tasks.recheck_due_domains")
def recheck_due_domains() -> None:
    """Beat's drift re-check: every domain whose next check is due."""
    from domains.services import domains_recheck_due

    domains_recheck_due()
