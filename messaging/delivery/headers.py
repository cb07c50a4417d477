"""Header fields written by the platform itself, never by the standard library's header folder.

Why not `email.headerregistry`: assigning a string to a header makes the standard library parse
it, and that parse *decodes* RFC 2047 encoded-words. A subject, display name or file name holding
`=?utf-8?q?Hi=0D=0ABcc:_x@y?=` became a raw CR LF on refolding (fixed upstream in Python 3.11.10,
CVE-2024-6923): a new header, or an early end of the header block and a body of the attacker's
choosing, all DKIM-signed. Here every input is text, full stop: a value that contains encoded-word
syntax is itself encoded, so the recipient sees exactly the characters the customer sent, on every
Python version. The block is checked once more after serialisation (`check_header_block`).

The limits (RFC 5322 §2.1.1, RFC 2047 §2, RFC 2231): lines are folded at 78 characters wherever
the text has room to fold, an encoded-word is at most 75 characters, nothing is longer than 998.
Folding is a single pass over the words, so its cost is linear in the length of the value.
"""

import base64
import quopri
import re
import string
from collections.abc import Iterator

LINE = 78  # RFC 5322 §2.1.1: SHOULD
EW_LINE = 76  # RFC 2047 §2: a line holding an encoded-word
HARD_LINE = 998  # RFC 5322 §2.1.1: MUST
ENCODED_WORD = 75  # RFC 2047 §2
CHARSET = "utf-8"
_Q_PREFIX, _B_PREFIX, _SUFFIX = f"=?{CHARSET}?q?", f"=?{CHARSET}?b?", "?="
_EW_OVERHEAD = len(_Q_PREFIX) + len(_SUFFIX)

# Characters that may stand for themselves inside a Q encoded-word anywhere, phrases included
# (RFC 2047 §5 (3)); every other byte is `=XX` and a space is `_`.
_Q_SAFE = frozenset(string.ascii_letters + string.digits + "!*+-/")
# RFC 5322 atext: a display name made only of these (and spaces) needs no quoting.
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
# RFC 2045 token characters (parameter values written without quotes).
_TOKEN = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
# RFC 2231 attribute-char: what a percent-encoded parameter value may leave as is.
_ATTRIBUTE_CHAR = frozenset(string.ascii_letters + string.digits + "!#$&+-.^_`|~")
_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))

# Everything that is not text on a header line: C0 controls (CR, LF and TAB included), DEL, C1
# controls (NEL among them) and the Unicode line and paragraph separators.
_CONTROLS_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES_RE = re.compile(r" {2,}")


class HeaderError(ValueError):
    """A header could not be written safely; the message is refused rather than sent otherwise."""


def one_line(value: str | None) -> str:
    """Text for a header: every run of control characters (line breaks included) becomes one
    space, runs of spaces shrink to one, lone surrogates become `?`, both ends are trimmed."""
    value = (value or "").encode("utf-8", "replace").decode("utf-8")
    return _SPACES_RE.sub(" ", _CONTROLS_RE.sub(" ", value)).strip(" ")


def _is_literal(word: str) -> bool:
    """A word that can go on the wire as is: printable ASCII, short enough to fold, and nothing a
    lenient decoder could take for an encoded-word (decoders find `=?` even inside a word)."""
    return len(word) <= LINE - 1 and "=?" not in word and all(c in _PRINTABLE for c in word)


# --- encoded-words ---------------------------------------------------------------------------


def _q_pieces(text: str) -> list[str]:
    pieces = []
    for ch in text:
        if ch in _Q_SAFE:
            pieces.append(ch)
        elif ch == " ":
            pieces.append("_")
        else:
            pieces.append("".join(f"={b:02X}" for b in ch.encode("utf-8")))
    return pieces


def _b_length(nbytes: int) -> int:
    return 4 * ((nbytes + 2) // 3)


def encoded_words(text: str, first_room: int) -> Iterator[str]:
    """`text` as a run of encoded-words, each at most 75 characters and never splitting a
    character; the first one fits in `first_room` characters when that leaves room for some text.

    Q or B, whichever is shorter for this text (mostly-ASCII text stays readable in Q; base64 for
    scripts where Q would triple the length). Whitespace between adjacent encoded-words is not
    displayed (RFC 2047 §6.2), so splitting the run is lossless.
    """
    q = _q_pieces(text)
    q_total = sum(map(len, q))
    raw = [ch.encode("utf-8") for ch in text]
    if q_total <= _b_length(sum(map(len, raw))):
        prefix, units, measure = _Q_PREFIX, q, None
    else:
        prefix, units, measure = _B_PREFIX, raw, _b_length
    room = first_room if first_room - _EW_OVERHEAD >= 12 else ENCODED_WORD
    room = min(room, ENCODED_WORD) - _EW_OVERHEAD
    chunk: list = []
    size = 0
    for unit in units:
        grown = size + len(unit)
        if chunk and (measure(grown) if measure else grown) > room:
            yield _encoded_word(prefix, chunk, measure)
            chunk, size, room = [], 0, ENCODED_WORD - _EW_OVERHEAD
            grown = len(unit)
        chunk.append(unit)
        size = grown
    if chunk:
        yield _encoded_word(prefix, chunk, measure)


def _encoded_word(prefix: str, chunk: list, measure) -> str:
    if measure is None:
        return prefix + "".join(chunk) + _SUFFIX
    return prefix + base64.b64encode(b"".join(chunk)).decode("ascii") + _SUFFIX


# --- folding ---------------------------------------------------------------------------------


class _Folder:
    """Appends tokens to a header, starting a continuation line (CRLF SP) whenever the next
    token would pass 78 characters — 76 on a line holding an encoded-word (RFC 2047 §2). Tokens
    are never split, so one long token (an address) makes a long line, far below 998 still.

    `reserve` keeps room at the end of every line for the separator (`,` or `;`) that folding
    leaves behind when the next token moves to a new line.
    """

    def __init__(self, name: str, *, reserve: int = 0):
        self.lines: list[str] = []
        self.current = f"{name}:"
        self.name_length = len(self.current)
        self.reserve = reserve
        self.encoded = False  # the current line holds an encoded-word

    @property
    def room(self) -> int:
        """Characters an encoded-word may take on the current line after the separating space."""
        return EW_LINE - self.reserve - len(self.current) - 1

    def add(self, token: str, *, separator: str = " ", encoded: bool = False) -> None:
        limit = (EW_LINE if encoded or self.encoded else LINE) - self.reserve
        if len(self.current) > self.name_length and len(self.current) + len(separator) + len(token) > limit:
            self.lines.append(self.current + separator.rstrip(" "))
            self.current = " " + token
            self.encoded = encoded
        else:
            self.current += separator + token
            self.encoded = self.encoded or encoded

    def add_text(self, text: str) -> None:
        """Unstructured text (RFC 5322 §3.2.5): literal words where possible, encoded-word runs
        for the words that cannot stand for themselves (and the spaces between them)."""
        words = text.split(" ") if text else []
        i = 0
        while i < len(words):
            if _is_literal(words[i]):
                self.add(words[i])
                i += 1
                continue
            j = i
            while j < len(words) and not _is_literal(words[j]):
                j += 1
            for word in encoded_words(" ".join(words[i:j]), self.room):
                self.add(word, encoded=True)
            i = j

    def done(self) -> str:
        return "\r\n".join([*self.lines, self.current]) + "\r\n"


def unstructured(name: str, value: str) -> str:
    """`Name: value\\r\\n`, folded, for free text such as a Subject."""
    folder = _Folder(name)
    folder.add_text(one_line(value))
    return folder.done()


# --- addresses -------------------------------------------------------------------------------

_DOT_ATOM_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# A quoted local part as stored (`"jane doe"@…`): qtext and quoted pairs, printable ASCII and space.
_QUOTED_LOCAL_RE = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"')


def ascii_domain(domain: str) -> str:
    """The A-label (`xn--…`) form of a domain, as the envelope uses it (pufferpost.smtp)."""
    try:
        return domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise HeaderError(f"the domain {domain!r} cannot be written in IDNA form") from exc


def addr_spec(address: str) -> str:
    """`local@domain` for a header, matching what RCPT TO carries: the domain as its A-label, a
    dot-atom local part as is, a quoted local part exactly once. Control characters, non-ASCII
    local parts (they need SMTPUTF8) and address literals are refused, not written."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        raise HeaderError(f"{address!r} is not an email address")
    if domain.startswith("["):
        raise HeaderError(f"{address!r}: address literals are not delivered to")
    if _DOT_ATOM_RE.fullmatch(local) is None and _QUOTED_LOCAL_RE.fullmatch(local) is None:
        if not local.isascii() or _CONTROLS_RE.search(local):
            raise HeaderError(f"{address!r}: the local part has characters no header can carry")
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}@{ascii_domain(domain)}"


def _phrase_tokens(name: str, room: int) -> tuple[list[str], bool]:
    """A display name as phrase tokens (and whether they are encoded-words): atoms as is, a
    quoted-string when it needs quoting only, encoded-words when it is not printable ASCII or
    contains encoded-word syntax."""
    words = name.split(" ")
    if all(_is_literal(w) and all(c in _ATEXT for c in w) for w in words):
        return words, False
    if "=?" not in name and all(c in _PRINTABLE or c == " " for c in name) and len(name) <= LINE - 3:
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'], False
    return list(encoded_words(name, room)), True


def address_list(name: str, addresses: list[tuple[str, str]]) -> str:
    """`Name: a, Display <b>\\r\\n` for `[(display_name, address), …]`, folded between tokens."""
    folder = _Folder(name, reserve=1)
    for index, (display_name, address) in enumerate(addresses):
        spec = addr_spec(address)
        display_name = one_line(display_name)
        separator = ", " if index else " "
        if display_name:
            tokens, encoded = _phrase_tokens(display_name, folder.room - len(separator) + 1)
            folder.add(tokens[0], separator=separator, encoded=encoded)
            for token in tokens[1:]:
                folder.add(token, encoded=encoded)
            folder.add(f"<{spec}>")
        else:
            folder.add(spec, separator=separator)
    return folder.done()


# --- structured fields written verbatim, and MIME parameters --------------------------------------


def verbatim(name: str, value: str) -> str:
    """A header whose value the platform composed from safe parts (Date, Message-ID, MIME-Version)."""
    if not value or not all(c in _PRINTABLE or c == " " for c in value):
        raise HeaderError(f"{name}: {value!r} is not printable ASCII")
    return f"{name}: {value}\r\n"


def url_list(name: str, urls: list[str]) -> str:
    """`List-Unsubscribe: <https://…>, <mailto:…>` (RFC 2369): written as is, folded only between
    entries; an encoded-word here is decoded by no client."""
    for url in urls:
        if not url or not all(c in _PRINTABLE for c in url) or "<" in url or ">" in url:
            raise HeaderError(f"{name}: {url!r} is not a printable ASCII URL")
    return f"{name}: " + ",\r\n ".join(f"<{url}>" for url in urls) + "\r\n"


def parameter_tokens(attribute: str, value: str) -> list[str]:
    """`attribute=value` for a Content-Type or Content-Disposition: a token as is, printable ASCII
    as a quoted-string, anything else (non-ASCII, encoded-word syntax) percent-encoded per
    RFC 2231 and split into continuations `attribute*0*=…` short enough to fold at 78."""
    if value and all(c in _TOKEN for c in value) and len(value) <= 60:
        return [f"{attribute}={value}"]
    if all(c in _PRINTABLE or c == " " for c in value) and "=?" not in value and len(value) <= 60:
        return ['{}="{}"'.format(attribute, value.replace("\\", "\\\\").replace('"', '\\"'))]
    encoded = [
        ch if ch in _ATTRIBUTE_CHAR else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        for ch in value.encode("utf-8", "replace").decode("utf-8")
    ]
    segments, current = [], ""
    for piece in encoded:
        if current and len(current) + len(piece) > 50:
            segments.append(current)
            current = ""
        current += piece
    segments.append(current)
    if len(segments) == 1:
        return [f"{attribute}*={CHARSET}''{segments[0]}"]
    return [
        f"{attribute}*{i}*={CHARSET}''{segment}" if i == 0 else f"{attribute}*{i}*={segment}"
        for i, segment in enumerate(segments)
    ]


def parameterized(name: str, value: str, parameters: list[tuple[str, str]]) -> str:
    """`Content-Type: text/plain; charset="utf-8"\\r\\n` and the like, folded between parameters."""
    if not value or not all(c in _TOKEN or c == "/" for c in value):
        raise HeaderError(f"{name}: {value!r} is not a MIME token")
    folder = _Folder(name, reserve=1)
    folder.add(value)
    for attribute, parameter in parameters:
        for token in parameter_tokens(attribute, parameter):
            folder.add(token, separator="; ")
    return folder.done()


# --- the last check before signing -----------------------------------------------------------

_FIELD_RE = re.compile(rb"([!-9;-~]+):")
_NOT_TEXT_RE = re.compile(rb"[^\x20-\x7e\t]")
_ENCODED_WORD_RE = re.compile(rb"=\?[^?\s]+\?([bBqQ])\?([^?\s]*)\?=")
_CONTROL_BYTES_RE = re.compile(rb"[\x00-\x1f\x7f]")


def check_header_block(block: bytes, names: list[str]) -> None:
    """Refuse a serialised header block (ending CRLF CRLF) that is not exactly the fields the
    platform wrote, in order: each line CRLF-terminated printable ASCII of at most 998 octets, every
    field start one of `names` and nothing else, no line that could end the block early.

    This is the belt to the braces above: whatever a future Python, a new header or a missed input
    does, a message whose header block is not what was meant is never signed or sent.
    """
    if not block.endswith(b"\r\n\r\n"):
        raise HeaderError("the header block does not end with an empty line")
    seen = []
    for line in block[:-4].split(b"\r\n"):
        if len(line) > HARD_LINE:
            raise HeaderError(f"a header line is {len(line)} octets long (at most {HARD_LINE})")
        if _NOT_TEXT_RE.search(line):
            raise HeaderError("a header line holds a control character, a bare CR or LF, or 8-bit data")
        if not line:
            raise HeaderError("an empty line would end the header block early")
        if line[:1] in (b" ", b"\t"):
            if not seen or not line.strip():
                raise HeaderError("a header continuation line is empty or has no field to continue")
            continue
        match = _FIELD_RE.match(line)
        if match is None:
            raise HeaderError(f"a header line is not a field: {line[:40]!r}")
        seen.append(match.group(1).decode("ascii"))
    if [n.lower() for n in seen] != [n.lower() for n in names]:
        raise HeaderError(f"the header block has the fields {seen}, not the {names} written")
    # A relay or client that re-parses and refolds the message (as Python before 3.11.10 does)
    # would turn an encoded CR or LF back into a real one: no encoded-word may hold a control.
    for kind, text in _ENCODED_WORD_RE.findall(block.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")):
        try:
            decoded = base64.b64decode(text) if kind in b"bB" else quopri.decodestring(text.replace(b"_", b" "))
        except ValueError as exc:
            raise HeaderError("a header holds an encoded-word that does not decode") from exc
        if _CONTROL_BYTES_RE.search(decoded):
            raise HeaderError("a header holds an encoded-word that decodes to a control character or line break")
