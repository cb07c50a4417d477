from django.db import models

from pufferpost.ids import PrefixedIdField
from pufferpost.models import Workspace


class TemplateQuerySet(models.QuerySet):
    def active(self):
        return self.filter(archived_at__isnull=True)


class Template(models.Model):
    """A named, slugged template. Archived templates keep their versions (sent messages point at
    them) but leave lists and cannot be sent; their slug is free for a new template."""

    id = PrefixedIdField(prefix="tpl")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    latest_version = models.PositiveIntegerField(null=True, blank=True)
    # Strict: a send or preview whose data lacks a variable the template uses is refused (422)
    # instead of rendering it as empty text.
    strict_variables = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TemplateQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "slug"],
                condition=models.Q(archived_at__isnull=True),
                name="template_slug_unique_per_workspace",
            )
        ]
        indexes = [models.Index(fields=["workspace", "-created_at", "-id"], name="template_page_idx")]

    def __str__(self):
        return self.name


class TemplateVersion(models.Model):
    """An immutable, numbered version. `translations` maps a locale to its own subject/html/text."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    subject = models.TextField()
    html = models.TextField()
    text = models.TextField(blank=True, default="")
    translations = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "version"]
        constraints = [models.UniqueConstraint(fields=["template", "version"], name="template_version_unique")]

    def __str__(self):
        return f"{self.template_id} v{self.version}"
