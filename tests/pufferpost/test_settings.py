import os
import subprocess
import sys
from pathlib import Path

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


PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "mail.example.com",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_SESSION_COOKIE_SECURE": "true",
    "DJANGO_CSRF_COOKIE_SECURE": "true",
}


def _check_deploy(extra, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PUFFERPOST_"))},
        "DJANGO_SECRET_KEY": "k" + "".join(chr(48 + i % 75) for i in range(80)),
        "PUFFERPOST_VAR_DIR": str(tmp_path),
        **extra,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], env=env, capture_output=True, text=True, timeout=120
    )
    return result.returncode, result.stdout + result.stderr


def test_check_deploy_with_the_production_settings_reports_nothing(tmp_path):
    code, output = _check_deploy(PRODUCTION, tmp_path)
    assert code == 0, output
    assert "System check identified no issues" in output, output


def test_check_deploy_without_them_names_what_is_missing(tmp_path):
    code, output = _check_deploy({}, tmp_path)
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output, output


def test_the_proxy_header_setting_is_what_django_compares(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        "DJANGO_SETTINGS_MODULE": "pufferpost.settings",
    }
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')", result.stderr


def test_behind_the_proxy_https_requests_pass_with_hsts_and_plain_http_is_redirected(settings, db):
    from django.test import Client

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    client = Client()
    secure = client.get("/v1/openapi.json", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")
    plain = client.get("/v1/openapi.json")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")


def test_the_threaded_worker_the_readme_recommends_ships_with_the_pinned_gunicorn():
    from gunicorn.workers.gthread import ThreadWorker

    root = Path(__file__).resolve().parents[2]
    assert "gunicorn==" in (root / "requirements.txt").read_text()
    assert ThreadWorker.__module__ == "gunicorn.workers.gthread"
    assert "--worker-class gthread" in (root / "README.md").read_text()
