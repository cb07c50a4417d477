"""Bearer API keys and scopes.

`Authorization: Bearer key_live_<secret>` (or `key_test_<secret>`, a test key): one indexed lookup on the key's SHA-256, with its
workspace in the same query. Views name the scope each action needs in `required_scopes`.
"""

from rest_framework import authentication, exceptions, permissions

from pufferpost import queries
from pufferpost.models import KEY_PREFIXES, ApiKey


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw.startswith(KEY_PREFIXES) or len(raw) > 200:
            raise exceptions.AuthenticationFailed()
        # Looked up on every request, so a revoked key fails on the very next one.
        key = queries.api_key_with_workspace(key_hash=ApiKey.hash(raw))
        if key is None:
            raise exceptions.AuthenticationFailed()
        return key, key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class MissingScope(exceptions.PermissionDenied):
    public_code = "missing_scope"

    def __init__(self, scope: str):
        super().__init__(detail=f'This API key lacks the "{scope}" scope.')


class HasScope(permissions.BasePermission):
    """Grants a request when its key holds the scope the view names for the action or method.

    `required_scopes` maps a viewset action (`list`, `create`, `refresh`, ...) or an HTTP method
    to a scope. A view that names none is refused, so a forgotten mapping fails closed.
    """

    def has_permission(self, request, view):
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated()
        scopes = getattr(view, "required_scopes", {})
        scope = scopes.get(getattr(view, "action", None) or "") or scopes.get(request.method)
        if scope is None:
            raise exceptions.MethodNotAllowed(request.method)
        if not key.has_scope(scope):
            raise MissingScope(scope)
        return True
