# The loopback SMTP servers and DKIM helpers of the delivery tests.
from tests.delivery.conftest import smtp_relay, smtp_sink  # noqa: F401
