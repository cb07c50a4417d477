import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from messaging.models import Message, MessageEvent, Suppression, Unsubscribe, UnsubscribeGroup
from tests.domains.factories import VerifiedDomainFactory
from tests.factories import TemplateFactory, TemplateVersionFactory, WorkspaceFactory
from tests.senders.factories import ActiveSenderFactory


class UnsubscribeGroupFactory(DjangoModelFactory):
    class Meta:
        model = UnsubscribeGroup

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Group {n}")


class UnsubscribeFactory(DjangoModelFactory):
    class Meta:
        model = Unsubscribe

    group = factory.SubFactory(UnsubscribeGroupFactory)
    email = factory.Sequence(lambda n: f"optout{n}@example.com")


class SuppressionFactory(DjangoModelFactory):
    class Meta:
        model = Suppression

    workspace = factory.SubFactory(WorkspaceFactory)
    email = factory.Sequence(lambda n: f"suppressed{n}@example.com")
    reason = "manual"


__all__ = [
    "ActiveSenderFactory",
    "MessageFactory",
    "SuppressionFactory",
    "UnsubscribeFactory",
    "UnsubscribeGroupFactory",
    "VerifiedDomainFactory",
]


class MessageFactory(DjangoModelFactory):
    """A stored message with a consistent sender/template/version in one workspace."""

    class Meta:
        model = Message
        skip_postgeneration_save = True

    workspace = factory.SubFactory(WorkspaceFactory)
    sender = factory.SubFactory(ActiveSenderFactory, workspace=factory.SelfAttribute("..workspace"))
    from_address = factory.SelfAttribute("sender.from_address")
    to = factory.Sequence(lambda n: f"rcpt{n}@example.com")
    template = factory.SubFactory(TemplateFactory, workspace=factory.SelfAttribute("..workspace"))
    template_version = factory.SubFactory(TemplateVersionFactory, template=factory.SelfAttribute("..template"))
    locale = "en"

    @factory.post_generation
    def accepted_event(obj, create, extracted, **kwargs):
        if create:
            MessageEvent.objects.create(
                message=obj, workspace=obj.workspace, type="accepted", occurred_at=obj.created_at or timezone.now()
            )
