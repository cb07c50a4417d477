import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PUFFERPOST_DELIVERY_LEASE", "0", "PUFFERPOST_DELIVERY_LEASE must be positive."),
        ("PUFFERPOST_IDEMPOTENCY_TTL", "3600", "PUFFERPOST_IDEMPOTENCY_TTL must be at least 86400."),
        ("PUFFERPOST_WEBHOOKS_TIMEOUT", "61", "PUFFERPOST_WEBHOOKS_TIMEOUT must be at most 60."),
        ("PUFFERPOST_SMTP_PORT", "twenty-five", "PUFFERPOST_SMTP_PORT is malformed"),
    ],
)
def test_a_malformed_or_out_of_range_setting_stops_the_start(name, value, message):
    env = {**os.environ, name: value, "DJANGO_SETTINGS_MODULE": "pufferpost.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
