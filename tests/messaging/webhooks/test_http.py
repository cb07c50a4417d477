"""The outbound HTTP module: SSRF checks at connect time, no redirects, timeouts."""

import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pufferpost import http
from tests.messaging.webhooks.conftest import Receiver


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
        "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd12:3456::1", "::ffff:10.0.0.1",
        "64:ff9b::7f00:1", "2002:7f00:1::1", "ff02::1", "192.0.2.10",
        # IPv4-compatible (::/96), SIIT (::ffff:0:0:0/96) and local-use NAT64 (64:ff9b:1::/48):
        # the standard library calls these global, whatever they embed.
        "::127.0.0.1", "::7f00:1", "::8.8.8.8", "::ffff:0:7f00:1", "64:ff9b:1::7f00:1", "64:ff9b:1::808:808",
        "64:ff9b::a00:7", "not an address",
    ],
)  # fmt: skip
def test_private_and_reserved_addresses_are_refused(address):
    assert not http.address_allowed(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address):
    assert http.address_allowed(address)


def test_a_name_resolving_to_loopback_is_refused_at_connect_time(dns, receiver):
    dns.publish("hooks.customer.test", "A", "127.0.0.1")
    with pytest.raises(http.BlockedAddress) as refused:
        http.post(f"http://hooks.customer.test:{receiver.port}/x", body=b"{}", headers={}, timeout=2)
    assert refused.value.permanent
    assert "127.0.0.1" in str(refused.value)
    assert receiver.requests == []


def test_a_literal_private_address_is_refused_at_connect_time(receiver):
    with pytest.raises(http.BlockedAddress):
        http.post(receiver.url, body=b"{}", headers={}, timeout=2)
    assert receiver.requests == []


@pytest.mark.parametrize("host", ["[::127.0.0.1]", "[::7f00:1]", "[64:ff9b:1::7f00:1]"])
def test_ipv6_forms_of_loopback_are_refused_at_connect_time(receiver, host):
    with pytest.raises(http.BlockedAddress):
        http.post(f"http://{host}:{receiver.port}/x", body=b"{}", headers={}, timeout=2)
    assert receiver.requests == []


def test_a_non_ascii_path_and_query_are_sent_percent_encoded(dns, receiver):
    dns.publish("hooks.customer.test", "A", "127.0.0.1")
    response = http.post(
        f"http://hooks.customer.test:{receiver.port}/hooks/bücher päth?q=ä b",
        body=b"{}",
        headers={},
        timeout=2,
        allow_private=True,
    )
    assert response.status == 200
    [request] = receiver.requests
    assert request.path == "/hooks/b%C3%BCcher%20p%C3%A4th?q=%C3%A4%20b"


def test_an_idn_host_is_looked_up_and_sent_as_its_a_label(dns, receiver):
    dns.publish("xn--bcher-kva.test", "A", "127.0.0.1")
    response = http.post(f"http://bücher.test:{receiver.port}/x", body=b"{}", headers={}, timeout=2, allow_private=True)
    assert response.status == 200
    [request] = receiver.requests
    assert request.headers["Host"] == f"xn--bcher-kva.test:{receiver.port}"


@pytest.mark.parametrize("url", ["http://a..b.test/x", "http://host.test:99999/x", "ftp://host.test/x"])
def test_a_url_no_request_can_be_made_to_is_a_permanent_failure(receiver, url):
    with pytest.raises(http.OutboundError) as failed:
        http.post(url, body=b"{}", headers={}, timeout=2, allow_private=True)
    assert failed.value.permanent


def test_the_vetted_address_is_used_with_the_name_in_the_host_header(dns, receiver):
    dns.publish("hooks.customer.test", "A", "127.0.0.1")
    response = http.post(
        f"http://hooks.customer.test:{receiver.port}/in?x=1",
        body=b'{"a":1}',
        headers={"Content-Type": "application/json"},
        timeout=2,
        allow_private=True,
    )
    assert response.status == 200 and response.body == b"ok"
    [request] = receiver.requests
    assert request.path == "/in?x=1"
    assert request.headers["Host"] == f"hooks.customer.test:{receiver.port}"
    assert request.body == b'{"a":1}'


def test_an_unknown_name_is_a_temporary_failure(dns):
    with pytest.raises(http.OutboundError) as failed:
        http.post("https://nowhere.customer.test/x", body=b"{}", headers={}, timeout=2)
    assert not failed.value.permanent
    assert not isinstance(failed.value, http.BlockedAddress)


def test_redirects_are_returned_not_followed(receiver):
    receiver.script.append({"status": 302, "headers": {"Location": f"{receiver.url}/elsewhere"}})
    response = http.post(receiver.url, body=b"{}", headers={}, timeout=2, allow_private=True)
    assert response.status == 302
    assert len(receiver.requests) == 1


def test_a_slow_receiver_times_out(receiver):
    receiver.script.append({"delay": 1.5})
    with pytest.raises(http.OutboundError) as failed:
        http.post(receiver.url, body=b"{}", headers={}, timeout=0.3, allow_private=True)
    assert "timed out" in str(failed.value)
    assert not failed.value.permanent


def test_a_refused_connection_is_a_temporary_failure(receiver):
    port = receiver.port
    receiver.stop()
    with pytest.raises(http.OutboundError) as failed:
        http.post(f"http://127.0.0.1:{port}/x", body=b"{}", headers={}, timeout=1, allow_private=True)
    assert not failed.value.permanent


def test_the_response_body_is_cut_to_the_excerpt(receiver):
    receiver.script.append({"status": 500, "body": b"x" * 5000})
    response = http.post(receiver.url, body=b"{}", headers={}, timeout=2, allow_private=True)
    assert response.status == 500 and len(response.body) == 1024


def _self_signed(tmp_path, name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_receiver(tmp_path, settings):
    cert, key = _self_signed(tmp_path, "hooks.customer.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    settings.PUFFERPOST_TLS_CA_FILE = str(cert)  # the receiver's certificate is trusted, nothing else extra
    server = Receiver(tls_context=server_context)
    yield server
    server.stop()


def test_https_goes_to_the_vetted_address_and_checks_the_certificate_for_the_name(dns, tls_receiver):
    dns.publish("hooks.customer.test", "A", "127.0.0.1")
    response = http.post(
        f"https://hooks.customer.test:{tls_receiver.port}/in", body=b"{}", headers={}, timeout=2, allow_private=True
    )
    assert response.status == 200
    assert tls_receiver.requests[0].headers["Host"] == f"hooks.customer.test:{tls_receiver.port}"


def test_https_refuses_a_certificate_for_another_name(dns, tls_receiver):
    dns.publish("other.customer.test", "A", "127.0.0.1")
    with pytest.raises(http.OutboundError) as failed:
        http.post(
            f"https://other.customer.test:{tls_receiver.port}/in", body=b"{}", headers={}, timeout=2, allow_private=True
        )
    assert "certificate" in str(failed.value).lower() or "hostname" in str(failed.value).lower()
    assert tls_receiver.requests == []


def test_a_receiver_trickling_its_headers_is_cut_off_at_the_timeout():
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"X")  # one header byte every 50 ms, never a full line
                except OSError:
                    return
                time.sleep(0.05)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(http.OutboundError) as failed:
            http.post(
                f"http://127.0.0.1:{listener.getsockname()[1]}/x",
                body=b"{}",
                headers={},
                timeout=0.5,
                allow_private=True,
            )
    finally:
        stop.set()
        listener.close()
    assert "timed out" in str(failed.value)
    assert time.monotonic() - started < 2
