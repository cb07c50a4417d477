"""DKIM signing: dkimpy for canonicalisation and header selection, OpenSSL for the RSA step.

Stock dkimpy does RSA with pure-Python `pow()` (about 150 signatures/s per core at 2048 bits,
see the machine ceilings in bench/README.md); the private-key operation through `cryptography` is an order of magnitude
faster. `DKIM.gen_header` calls dkimpy's module-level `RSASSA_PKCS1_v1_5_sign`, so the seam is a
subclass that overrides `gen_header` for rsa-sha256 and passes it a `cryptography` key instead
of dkimpy's dict — nothing in dkimpy is patched, other users of it are unaffected.
"""

import base64
import functools
import time

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy

# Signed when present, in this order. From is signed once more ("oversigned") so a second From
# added in transit breaks the signature. Received, Return-Path and friends change on the way and
# are never signed.
SIGNED_HEADERS = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
OVERSIGNED_HEADERS = ("from",)


@functools.lru_cache(maxsize=1024)
def load_private_key(domain: str, private_key_pem: str) -> rsa.RSAPrivateKey:
    """The parsed key for a domain; cached because PEM parsing costs about as much as a signature."""
    key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise dkim.KeyFormatError(f"the DKIM key of {domain} is not an RSA key")
    return key


class _OpenSSLDKIM(dkim.DKIM):
    """dkimpy's DKIM with the RSA signature computed by OpenSSL."""

    def gen_header(self, fields, include_headers, canon_policy, header_name, pk, standardize=False):
        # Same steps as dkimpy 1.1.8's DomainSigner.gen_header for rsa-sha256 without
        # `standardize` (an ARC-only option): fold with a placeholder b=, hash the selected headers
        # plus this header with b= emptied, sign the digest, then fold again with the real b=.
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        hasher = self.hasher()
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(hasher, canon_policy, headers, include_headers, header, dict(fields))
        signature = pk.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        idx = [i for i in range(len(fields)) if fields[i][0] == b"b"][0]
        fields[idx] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep)

    def sign_rsa_sha256(self, *, selector: bytes, domain: bytes, key: rsa.RSAPrivateKey, include_headers, timestamp):
        """`DKIM.sign` restricted to rsa-sha256 relaxed/relaxed, taking an already-parsed key."""
        self.signature_algorithm = b"rsa-sha256"
        self.hasher = dkim.HASH_ALGORITHMS[self.signature_algorithm]
        canon_policy = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
        include_headers = tuple(h.lower() for h in include_headers)
        self.include_headers = include_headers
        body_hash = self.hasher()
        body_hash.update(canon_policy.canonicalize_body(self.body))
        fields = [
            (b"v", b"1"),
            (b"a", self.signature_algorithm),
            (b"c", canon_policy.to_c_value()),
            (b"d", domain),
            (b"i", b"@" + domain),
            (b"q", b"dns/txt"),
            (b"s", selector),
            (b"t", str(int(timestamp)).encode("ascii")),
            (b"h", b" : ".join(include_headers)),
            (b"bh", base64.b64encode(body_hash.digest())),
            # A long placeholder pushes b= onto its own folded line, so replacing it after
            # hashing does not move the whitespace of the tags before it.
            (b"b", b"0" * 60),
        ]
        header_value = self.gen_header(fields, include_headers, canon_policy, b"DKIM-Signature", key)
        self.domain, self.selector, self.signature_fields = domain, selector, dict(fields)
        return b"DKIM-Signature: " + header_value


def headers_to_sign(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The `h=` list for a message's parsed headers: SIGNED_HEADERS present, plus the oversigned ones."""
    present = {name.decode("ascii", "replace").lower() for name, _ in headers}
    names = [h for h in SIGNED_HEADERS if h in present] + list(OVERSIGNED_HEADERS)
    if "from" not in present:
        raise dkim.MessageFormatError("a message without From cannot be DKIM-signed")
    return [h.encode() for h in names]


def signature_header(
    message: bytes, *, domain: str, selector: str, private_key_pem: str, timestamp: float | None = None
) -> bytes:
    """The `DKIM-Signature: …\\r\\n` header line for `message` (bytes with CRLF line endings)."""
    signer = _OpenSSLDKIM(message, linesep=b"\r\n")
    return signer.sign_rsa_sha256(
        selector=selector.encode("ascii"),
        domain=domain.encode("ascii"),
        key=load_private_key(domain, private_key_pem),
        include_headers=headers_to_sign(signer.headers),
        timestamp=time.time() if timestamp is None else timestamp,
    )


def sign(message: bytes, *, domain: str, selector: str, private_key_pem: str, timestamp: float | None = None) -> bytes:
    """`message` with a DKIM-Signature header for `d=domain; s=selector` prepended."""
    return (
        signature_header(
            message, domain=domain, selector=selector, private_key_pem=private_key_pem, timestamp=timestamp
        )
        + message
    )


def public_key_txt(public_key_b64: str) -> str:
    """The DNS TXT value publishing a `Domain.dkim_public_key` (base64 DER SubjectPublicKeyInfo)."""
    return f"v=DKIM1; k=rsa; p={public_key_b64}"
