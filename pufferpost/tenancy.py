"""The workspace-scoped base viewset: every queryset is filtered by the key's workspace.

Subclasses describe their rows with `base_queryset()` and cannot replace `get_queryset`, so
no route can forget the scoping. An id from another workspace is a 404, exactly like an id
that does not exist.
"""

from rest_framework import viewsets
from rest_framework.exceptions import NotFound


class WorkspaceScopedViewSet(viewsets.GenericViewSet):
    lookup_field = "id"
    lookup_value_regex = "[^/]+"
    not_found_code = "not_found"
    not_found_message = "No such resource."
    required_scopes: dict[str, str] = {}
    queryset = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("get_queryset", "filter_queryset_by_workspace"):
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} may not override {name}(); override base_queryset() instead.")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # PostgreSQL text cannot hold NUL, so an id or email containing one names nothing: answer the
        # resource's 404 here instead of letting the lookup fail in the database driver (a 500).
        if any("\x00" in str(value) for value in kwargs.values()):
            raise NotFound()

    @property
    def workspace(self):
        return self.request.auth.workspace

    def base_queryset(self):
        return self.queryset.all()

    def filter_queryset_by_workspace(self, queryset):
        return queryset.filter(workspace_id=self.request.auth.workspace_id)

    def get_queryset(self):
        return self.filter_queryset_by_workspace(self.base_queryset())
