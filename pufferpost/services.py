from django.db import transaction
from django.utils import timezone

from pufferpost.errors import Conflict
from pufferpost.models import SCOPES, ApiKey, Workspace


def workspace_create(*, name: str, default_locale: str = "en") -> Workspace:
    return Workspace.objects.create(name=name, default_locale=default_locale)


def api_key_create(*, workspace: Workspace, scopes=None, name: str = "", livemode: bool = True) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never stored and cannot be shown again.

    `livemode=False` makes a test key (`key_test_…`): same scopes and checks, simulated delivery.
    """
    scopes = list(SCOPES) if not scopes else list(dict.fromkeys(scopes))
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"Unknown scope(s): {', '.join(unknown)}")
    raw = ApiKey.generate_secret(livemode=livemode)
    key = ApiKey.objects.create(
        workspace=workspace, name=name, prefix=raw[:16], key_hash=ApiKey.hash(raw), scopes=scopes, livemode=livemode
    )
    return key, raw


def api_key_revoke(*, key: ApiKey) -> bool:
    return bool(ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()))


@transaction.atomic
def workspace_set_sending_paused(*, workspace: Workspace, paused: bool, reason: str = "") -> bool:
    changed = Workspace.objects.filter(pk=workspace.pk, sending_paused=not paused).update(
        sending_paused=paused, sending_paused_reason=reason if paused else "", updated_at=timezone.now()
    )
    workspace.refresh_from_db()
    return bool(changed)


def workspace_capacity_check(*, workspace: Workspace, rows, limit_field: str, code: str, noun: str) -> None:
    """Refuse one more of `rows` (the workspace's domains or senders) once it has `limit_field` of
    them: 409 `code`. Locks the workspace row, so concurrent creates cannot pass the check together;
    call it inside the transaction that creates the row."""
    locked = Workspace.objects.select_for_update().only(limit_field).get(pk=workspace.pk)
    limit = getattr(locked, limit_field)
    if rows.count() >= limit:
        raise Conflict(
            code, f"The workspace has reached its limit of {limit} {noun}; delete one, or ask us to raise the limit."
        )
