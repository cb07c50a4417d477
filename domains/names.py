"""Domain-name syntax: what `POST /v1/domains` accepts and how it is normalised."""

import re

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_TLD = re.compile(r"^[0-9]+$")


class InvalidDomainName(ValueError):
    pass


def normalize_domain_name(raw: str) -> str:
    """Trim, lowercase and drop one trailing dot; raise InvalidDomainName unless it is a host name.

    Accepts LDH labels (internationalised names are converted to their `xn--` form), at least two of
    them, each at most 63 characters and 253 in all. IP addresses are refused: a top-level label
    is never all digits.
    """
    name = raw.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidDomainName("Enter a domain name.")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidDomainName("Enter a valid domain name.")
    if len(name) > 253:
        raise InvalidDomainName("A domain name is at most 253 characters long.")
    labels = name.split(".")
    if len(labels) < 2:
        raise InvalidDomainName("Enter a fully qualified domain name, such as mail.example.com.")
    for label in labels:
        if len(label) > 63:
            raise InvalidDomainName(f'The label "{label[:20]}…" is longer than 63 characters.')
        if not _LABEL.match(label):
            raise InvalidDomainName("Enter a valid domain name (letters, digits, hyphens and dots only).")
    if _NUMERIC_TLD.match(labels[-1]):
        raise InvalidDomainName("Enter a domain name, not an IP address.")
    return name
