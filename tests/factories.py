import factory
from factory.django import DjangoModelFactory

from domains.models import Domain
from pufferpost.models import Workspace
from senders.models import Sender
from templates_app.models import Template, TemplateVersion


class WorkspaceFactory(DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")


class DomainFactory(DjangoModelFactory):
    class Meta:
        model = Domain

    workspace = factory.SubFactory(WorkspaceFactory)
    domain = factory.Sequence(lambda n: f"mail{n}.example.com")


class SenderFactory(DjangoModelFactory):
    class Meta:
        model = Sender

    workspace = factory.SubFactory(WorkspaceFactory)
    from_address = factory.Sequence(lambda n: f"sender{n}@mail.example.com")
    display_name = "Example Sender"


class TemplateFactory(DjangoModelFactory):
    class Meta:
        model = Template

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Template {n}")
    slug = factory.Sequence(lambda n: f"template-{n}")


class TemplateVersionFactory(DjangoModelFactory):
    class Meta:
        model = TemplateVersion

    template = factory.SubFactory(TemplateFactory)
    version = 1
    subject = "Hello {{ name }}"
    html = "<p>Hello {{ name }}</p>"
    text = "Hello {{ name }}"
