"""Bounce classes: what a failure says about the recipient and about the sender.

One classifier for both sides of the feedback loop: the synchronous SMTP reply at delivery
(messaging.delivery) and the asynchronous DSN (messaging.feedback.services). The class comes from
the enhanced status code (RFC 3463) and the reply text, through the rules in `bounce_rules.toml`
(data, so operators extend them with `PUFFERPOST_BOUNCE_RULES_FILE` instead of patching code):

- `hard`: the recipient is gone (5.1.x, mailbox disabled) → bounced and suppressed;
- `block`: the receiver refuses the *sender* (policy, reputation, authentication, blocklists,
  content) → bounced, not suppressed (the recipient is fine), counted in the sender's block rate;
- `soft`: temporary (4.x.x, a full mailbox) → deferred and retried;
- `expired`: a relay gave up after its own retries (a `failed` DSN with a 4.x.x status), or our
  retry window closed → terminal, suppressed only when it happens again for the same address.
"""

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

BUILTIN_RULES = Path(__file__).with_name("bounce_rules.toml")
# Reply texts are searched only this far: rules are regular expressions and texts come from strangers.
TEXT_LIMIT = 2000

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
_BASIC = re.compile(r"^\s*([245]\d\d)(?:[ -]|$)")


class BounceClass(StrEnum):
    HARD = "hard"
    BLOCK = "block"
    SOFT = "soft"
    EXPIRED = "expired"


# Classes that end the message with `bounced` at delivery (soft is retried instead).
TERMINAL_AT_DELIVERY = (BounceClass.HARD, BounceClass.BLOCK)


@dataclass(frozen=True)
class Classification:
    bounce_class: BounceClass
    basic_code: int | None  # the SMTP reply code (550), when known
    enhanced_code: str  # "5.1.1", or "" when neither the status nor the text carried one
    rule: str  # which rule decided ("default-permanent" when none matched)

    @property
    def suppresses(self) -> bool:
        return self.bounce_class == BounceClass.HARD

    def as_detail(self) -> dict:
        return {
            "bounce_class": self.bounce_class.value,
            "basic_code": self.basic_code,
            "enhanced_code": self.enhanced_code,
            "bounce_rule": self.rule,
        }


@dataclass(frozen=True)
class _Rule:
    name: str
    bounce_class: BounceClass
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    text: re.Pattern | None
    when: str

    def matches(self, *, enhanced: str, text: str, permanent: bool) -> bool:
        if self.when != "any" and (self.when == "permanent") != permanent:
            return False
        if (self.exact or self.prefixes) and not (
            enhanced in self.exact or any(enhanced.startswith(p) for p in self.prefixes)
        ):
            return False
        return self.text is None or self.text.search(text) is not None


def _rules_load(path: Path) -> list[_Rule]:
    """Parse one rules file; anything malformed is an ImproperlyConfigured naming the file and rule."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImproperlyConfigured(f"bounce rules {path}: {exc}") from exc
    rules = []
    for index, entry in enumerate(data.get("rule", [])):
        name = str(entry.get("name") or f"{path.name}#{index + 1}")
        unknown = set(entry) - {"name", "class", "status", "text", "when"}
        statuses = entry.get("status", [])
        if isinstance(statuses, str):
            statuses = [statuses]
        try:
            bounce_class = BounceClass(entry.get("class"))
            if bounce_class == BounceClass.EXPIRED:
                raise ValueError("`expired` is decided by the report, not by a rule")
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            if not (statuses or entry.get("text")):
                raise ValueError("a rule needs `status` or `text`")
            when = entry.get("when", "permanent")
            if when not in ("permanent", "temporary", "any"):
                raise ValueError("`when` is permanent, temporary or any")
            text = re.compile(entry["text"], re.IGNORECASE) if entry.get("text") else None
        except (ValueError, re.error) as exc:
            raise ImproperlyConfigured(f"bounce rules {path}, rule {name!r}: {exc}") from exc
        rules.append(
            _Rule(
                name=name,
                bounce_class=bounce_class,
                exact=frozenset(s for s in statuses if not s.endswith(".")),
                prefixes=tuple(s for s in statuses if s.endswith(".")),
                text=text,
                when=when,
            )
        )
    return rules


def _rules() -> list[_Rule]:
    global _loaded
    if _loaded is None:
        extra = settings.PUFFERPOST_BOUNCE_RULES_FILE
        _loaded = (_rules_load(Path(extra)) if extra else []) + _rules_load(BUILTIN_RULES)
    return _loaded


_loaded: list[_Rule] | None = None


def bounce_rules_check() -> None:
    """Load (and so validate) the rules now: a malformed file is an ImproperlyConfigured at start."""
    _rules()


def bounce_rules_reload() -> None:
    """Forget the loaded rules (after PUFFERPOST_BOUNCE_RULES_FILE changed, e.g. in tests)."""
    global _loaded
    _loaded = None


def enhanced_code_find(text: str, *, first_digit: str = "") -> str:
    """The first enhanced status code in `text` ("5.1.1"), preferring one of the reply's own class."""
    found = ["{}.{}.{}".format(*m.groups()) for m in _ENHANCED.finditer(text[:TEXT_LIMIT])]
    if first_digit:
        return next((code for code in found if code[0] == first_digit), found[0] if found else "")
    return found[0] if found else ""


def basic_code_find(text: str) -> int | None:
    """The SMTP reply code a diagnostic starts with (`550 5.1.1 …` → 550)."""
    match = _BASIC.match(text)
    return int(match.group(1)) if match else None


def bounce_classify(
    *, text: str, basic_code: int | None = None, enhanced_code: str = "", action: str = ""
) -> Classification:
    """Classify one failure.

    `text` is the reply (synchronous) or the Diagnostic-Code (DSN); `basic_code` the SMTP reply
    code when the caller has it; `enhanced_code` the DSN's Status field; `action` the DSN's
    Action (`failed`, `delayed`), empty for a synchronous reply.
    """
    text = " ".join(str(text or "")[: TEXT_LIMIT * 2].split())[:TEXT_LIMIT]
    if basic_code is None:
        basic_code = basic_code_find(text)
    first_digit = str(basic_code)[0] if basic_code else ""
    enhanced = (enhanced_code or "").strip()
    if not _ENHANCED.fullmatch(enhanced):
        enhanced = enhanced_code_find(text, first_digit=first_digit)
    # A reply code and an enhanced code that disagree (`550 4.2.2`): the enhanced code is the finer one.
    severity = enhanced[:1] or first_digit or ("5" if action == "failed" else "4")
    if action == "delayed":
        return Classification(BounceClass.SOFT, basic_code, enhanced, "delayed")
    if action == "failed" and severity == "4":
        # The reporting MTA retried until its own queue lifetime ran out.
        return Classification(BounceClass.EXPIRED, basic_code, enhanced, "failed-after-temporary")
    permanent = severity == "5"
    for rule in _rules():
        if rule.matches(enhanced=enhanced, text=text, permanent=permanent):
            return Classification(rule.bounce_class, basic_code, enhanced, rule.name)
    if permanent:
        return Classification(BounceClass.HARD, basic_code, enhanced, "default-permanent")
    return Classification(BounceClass.SOFT, basic_code, enhanced, "default-temporary")


_SUPPRESSION_DETAIL_KEYS = (
    "bounce_class",
    "status",
    "basic_code",
    "enhanced_code",
    "diagnostic",
    "remote_mta",
    "reporting_mta",
    "feedback_type",
    "source",
)


def suppression_detail(detail: dict) -> dict:
    """What a suppression keeps of the event that caused it: why, in the receiver's words."""
    return {key: detail[key] for key in _SUPPRESSION_DETAIL_KEYS if detail.get(key) not in (None, "")}
