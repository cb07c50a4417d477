import factory
from factory.django import DjangoModelFactory

from senders.models import SenderState, SenderStateChange
from tests.factories import SenderFactory

__all__ = ["ActiveSenderFactory", "PausedSenderFactory", "SenderFactory", "SenderStateChangeFactory"]


class ActiveSenderFactory(SenderFactory):
    state = SenderState.ACTIVE
    state_reason = "Approved in review."


class PausedSenderFactory(SenderFactory):
    state = SenderState.PAUSED
    state_reason = "Bounce rate above threshold."


class SenderStateChangeFactory(DjangoModelFactory):
    class Meta:
        model = SenderStateChange

    sender = factory.SubFactory(SenderFactory)
    from_state = SenderState.UNDER_REVIEW
    to_state = SenderState.ACTIVE
    reason = "Looks fine."
    actor_label = "system"
