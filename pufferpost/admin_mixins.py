class ReadOnlyAdminMixin:
    """Rows that staff may look at but never add, edit or delete by hand: they change only
    through services (state machines, actions), so the admin cannot bypass their invariants."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
