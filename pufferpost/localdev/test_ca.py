"""A throwaway certificate authority for loopback servers (tests, the bench, `make up`; never production).

The receiving world's MX hosts and the MTA-STS policy server present certificates this CA
issued; a client that should verify them is pointed at `ca_file` (PUFFERPOST_TLS_CA_FILE).
"""

import datetime as dt
import ipaddress
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class TestCA:
    """Issues leaf certificates for host names; files live in a temporary directory."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: str | Path | None = None, *, name: str = "PufferPost loopback test CA"):
        self.directory = Path(directory or tempfile.mkdtemp(prefix="pp-test-ca-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        # EC keys: generating one takes microseconds, an RSA key a noticeable fraction of a second.
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = self.directory / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, *names: str, valid: bool = True) -> tuple[Path, Path]:
        """(certificate file, key file) for `names` (DNS names or IP literals); `valid=False` issues
        one that expired yesterday, for drills of a failed verification."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        alt = []
        for n in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        start, end = (now - dt.timedelta(minutes=5), now + dt.timedelta(days=7))
        if not valid:
            start, end = now - dt.timedelta(days=3), now - dt.timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        stem = self.directory / f"{names[0].replace('*', '_')}{'' if valid else '-expired'}"
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(_pem_key(key))
        return cert_file, key_file

    def server_context(self, *names: str, valid: bool = True) -> ssl.SSLContext:
        cert_file, key_file = self.issue(*names, valid=valid)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context
