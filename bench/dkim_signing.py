"""Signs per second, stock dkimpy vs the OpenSSL-backed adapter: `python -m bench.dkim_signing`.

A printout for comparing machines and versions, not a test: absolute rates drift, the ratio is
what matters (the machine ceilings in bench/README.md).
"""

import sys
import time

import dkim as dkimpy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from messaging.delivery import dkim

DOMAIN, SELECTOR = "mail.acme.test", "mlr1"


def sample_message(size: int = 5800) -> bytes:
    headers = (
        b"From: Acme Shop <no-reply@mail.acme.test>\r\nTo: jane@example.com\r\nSubject: Your order o_9\r\n"
        b"Date: Tue, 09 Jun 2026 10:15:30 +0000\r\nMessage-ID: <msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2@mail.acme.test>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"List-Unsubscribe: <https://app.example.net/v1/unsubscribe/T>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n"
    )
    line = b"Thanks for your order. Your parcel is on its way and should arrive soon.\r\n"
    return headers + line * ((size - len(headers)) // len(line))


def rate(fn, seconds: float) -> float:
    fn()  # warm caches
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        fn()
        count += 1
    return count / elapsed


def main(seconds: float = 3.0) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    message = sample_message()
    include = dkim.headers_to_sign(dkimpy.rfc822_parse(message)[0])

    def stock():
        dkimpy.sign(
            message,
            SELECTOR.encode(),
            DOMAIN.encode(),
            pem.encode(),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )

    def adapter():
        dkim.sign(message, domain=DOMAIN, selector=SELECTOR, private_key_pem=pem)

    stock_rate = rate(stock, seconds)
    adapter_rate = rate(adapter, seconds)
    print(f"RSA-2048, {len(message)}-byte message, one core, {seconds:.0f} s each")
    print(f"  stock dkimpy : {stock_rate:8.0f} signs/s")
    print(f"  adapter      : {adapter_rate:8.0f} signs/s  ({adapter_rate / stock_rate:.1f}x)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
