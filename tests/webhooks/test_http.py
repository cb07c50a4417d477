"""The outbound HTTP module: SSRF checks at connect time, no redirects, timeouts."""

import pytest

from pufferpost import http


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
        "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd12:3456::1", "::ffff:10.0.0.1",
        "64:ff9b::7f00:1", "2002:7f00:1::1", "ff02::1", "192.0.2.10",
    ],
)  # fmt: skip
def test_private_and_reserved_addresses_are_refused(address):
    assert not http.address_allowed(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
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
