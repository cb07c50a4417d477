# The loopback SMTP servers of the delivery tests, the feedback tests' sender and messages, and the
# webhook tests' receiver: the end-to-end tests run the same parts against real processes.
from tests.messaging.delivery.conftest import smtp_relay, smtp_sink  # noqa: F401
from tests.messaging.feedback.conftest import make_message, sender  # noqa: F401
from tests.messaging.webhooks.conftest import message, receiver  # noqa: F401
