"""Bearer API keys and scopes.

`Authorization: Bearer key_live_<secret>`: one indexed lookup on the key's SHA-256, with its
workspace in the same query. Views name the scope each action needs in `required_scopes`.
"""

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.query import get_related_populators
from rest_framework import authentication, exceptions, permissions

from pufferpost.models import KEY_PREFIX, ApiKey

_SENTINEL = "\x00key-hash\x00"


class _KeyLookup:
    """`ApiKey.objects.active().select_related("workspace").filter(key_hash=…).first()`, compiled
    once per database connection instead of on every request (building that query through the ORM
    cost ~0.45 ms of CPU a request, a third of the send path's budget). It still runs on every
    request, so a revoked key fails on the very next one. Rows become objects exactly as the ORM
    would make them (same converters, same select_related population)."""

    def __init__(self, conn):
        queryset = ApiKey.objects.active().select_related("workspace").filter(key_hash=_SENTINEL)[:1]
        compiler = queryset.query.get_compiler(connection=conn)
        self.sql, params = compiler.as_sql()
        if list(params) != [_SENTINEL]:  # the lookup must take the hash as its only parameter
            raise RuntimeError("unexpected API key lookup parameters")
        self.compiler = compiler
        self.alias = conn.alias
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        self.populators = get_related_populators(klass_info, select, conn.alias)
        self.converters = compiler.get_converters([column[0] for column in select])

    def get(self, key_hash: str) -> ApiKey | None:
        with self.compiler.connection.cursor() as cursor:
            cursor.execute(self.sql, [key_hash])
            row = cursor.fetchone()
        if row is None:
            return None
        if self.converters:
            row = next(iter(self.compiler.apply_converters([row], self.converters)))
        key = ApiKey.from_db(self.alias, self.init_list, row[self.start : self.end])
        for populator in self.populators:
            populator.populate(row, key)
        return key


def active_key_with_workspace(key_hash: str) -> ApiKey | None:
    """The unrevoked key with that hash, its workspace loaded; one query."""
    conn = connections[DEFAULT_DB_ALIAS]  # this thread's connection wrapper
    lookup = getattr(conn, "_pufferpost_key_lookup", None)
    if lookup is None:
        lookup = conn._pufferpost_key_lookup = _KeyLookup(conn)
    return lookup.get(key_hash)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
            raise exceptions.AuthenticationFailed()
        key = active_key_with_workspace(ApiKey.hash(raw))
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
