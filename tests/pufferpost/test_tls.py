"""Client TLS contexts are built once per process (loading the trust store costs ~20 ms, more than
signing and sending a message) and follow PUFFERPOST_TLS_CA_FILE."""

import os
import ssl

from pufferpost.tls import client_context
from tests.certificates import self_signed_certificate


def _trusted_names(context: ssl.SSLContext) -> set[str]:
    return {
        value for cert in context.get_ca_certs() for rdn in cert["subject"] for key, value in rdn if key == "commonName"
    }


def test_one_context_per_process_trusting_the_configured_ca(settings, tmp_path):
    cert, _ = self_signed_certificate(tmp_path, "Test CA one", ca=True)
    settings.PUFFERPOST_TLS_CA_FILE = str(cert)
    context = client_context()
    assert client_context() is context  # built once, shared
    assert "Test CA one" in _trusted_names(context)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_a_changed_ca_file_builds_a_new_context(settings, tmp_path):
    cert, _ = self_signed_certificate(tmp_path, "Test CA before", ca=True)
    settings.PUFFERPOST_TLS_CA_FILE = str(cert)
    before = client_context()
    self_signed_certificate(tmp_path, "Test CA after", ca=True)  # the same path, rewritten
    stat = os.stat(cert)
    os.utime(cert, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = client_context()
    assert after is not before
    assert "Test CA after" in _trusted_names(after) and "Test CA before" not in _trusted_names(after)


def test_the_unchecked_context_encrypts_without_checking_and_leaves_the_checked_one_alone(settings, tmp_path):
    cert, _ = self_signed_certificate(tmp_path, "Test CA", ca=True)
    settings.PUFFERPOST_TLS_CA_FILE = str(cert)
    unchecked = client_context(verify=False)
    assert not unchecked.check_hostname and unchecked.verify_mode == ssl.CERT_NONE
    checked = client_context()
    assert checked is not unchecked and checked.check_hostname and checked.verify_mode == ssl.CERT_REQUIRED
