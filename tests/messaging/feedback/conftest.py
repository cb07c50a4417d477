import pytest

from messaging.models import Message
from tests.factories import SenderFactory, TemplateVersionFactory
from tests.messaging.delivery.conftest import smtp_sink  # noqa: F401 (a real MX on loopback for delivered messages)


@pytest.fixture
def sender(workspace):
    return SenderFactory(workspace=workspace, from_address="news@mail.acme.test", state="active")


@pytest.fixture
def make_message(sender):
    """`make_message(status="delivered", to=..., cc=[...])` → a Message from `sender`."""
    version = TemplateVersionFactory(template__workspace=sender.workspace)

    def make(*, status="delivered", to="jane@example.org", cc=(), count=None):
        def build(index):
            return Message(
                workspace=sender.workspace,
                sender=sender,
                from_address=sender.from_address,
                to=to if count is None else f"user{index}@example.org",
                cc=list(cc),
                template=version.template,
                template_version=version,
                locale="en",
                status=status,
            )

        if count is None:
            message = build(0)
            message.save()
            return message
        return Message.objects.bulk_create([build(i) for i in range(count)])

    return make
