"""Locale- and timezone-aware filters (Babel): date, time, datetime, number, decimal, percent, currency.

The locale and zone come from the render in progress (the sandbox budget carries them), so a
compiled template is shared by every locale. The filters take `pass_context` so Jinja never
folds them into constants at compile time, when no render is in progress.

A value the filter cannot read (`"soon"|date`, `"€42"|currency('EUR')`) is printed unchanged:
a customer's data problem should show up in the email, not fail the send. A bad *pattern* in the
template itself is a render error.
"""

import copy
import functools
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import Locale, UnknownLocaleError, dates, numbers
from jinja2 import pass_context

from templates_app.sandbox import RenderError, current_budget

_NAMED_FORMATS = ("short", "medium", "long", "full")
_MAX_PATTERN = 100
_LOCALE_RE = re.compile(r"^[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|[0-9]{3}))?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH_MILLISECONDS_ABOVE = 100_000_000_000  # year 5138 in seconds; larger epochs are milliseconds


def is_locale_tag(value: str) -> bool:
    """A canonical tag: `de`, `pt-BR`, `zh-Hant-TW`, `es-419`."""
    return isinstance(value, str) and _LOCALE_RE.fullmatch(value) is not None


def normalize_locale(value) -> str | None:
    """`pt_br`, `PT-br` → `pt-BR`; anything that is not a language tag → None. The one locale
    check sends and previews share: extensions (`ja-JP-u-ca-japanese`) are refused by both."""
    if not isinstance(value, str) or not 2 <= len(value) <= 35:
        return None
    parts = value.strip().replace("_", "-").split("-")
    fixed = [parts[0].lower()]
    for part in parts[1:]:
        fixed.append(part.title() if len(part) == 4 and part.isalpha() else part.upper())
    tag = "-".join(fixed)
    return tag if is_locale_tag(tag) else None


@functools.lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale:
    """The closest locale Babel knows: `pt-BR`, else `pt`, else English."""
    for candidate in (tag, tag.split("-")[0]):
        try:
            return Locale.parse(candidate, sep="-")
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale.parse("en")


# Names the zone database of *this host* gives meaning to, not the IANA database: `localtime`
# is whatever the machine is set to, `posixrules` and `Factory` are build artefacts.
_HOST_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - _HOST_ZONES


@functools.lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    if name not in _zone_names():
        raise RenderError(f"Unknown timezone {name!r}.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise RenderError(f"Unknown timezone {name!r}.") from exc


def is_timezone(name) -> bool:
    """An IANA zone name (`Europe/Berlin`, `UTC`): the one check sends and previews share, so a
    send is refused (422) for exactly the zones a render would refuse."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return False
    try:
        zone(name)
    except RenderError:
        return False
    return True


def _where():
    budget = current_budget()
    if budget is None or budget.locale is None:
        return babel_locale("en"), UTC
    return budget.locale, budget.tzinfo


def _pattern(fmt) -> str:
    fmt = str(fmt)
    if len(fmt) > _MAX_PATTERN:
        raise RenderError(f"Format patterns are limited to {_MAX_PATTERN} characters.")
    return fmt


def _moment(value, tzinfo):
    """A datetime converted to `tzinfo`, or a plain date (no zone to convert), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return value
    elif isinstance(value, (int, float, Decimal)):
        seconds = float(value)
        if abs(seconds) > _EPOCH_MILLISECONDS_ABOVE:
            seconds /= 1000
        try:
            moment = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str):
        text = value.strip()
        try:
            if _ISO_DATE.match(text):
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tzinfo)


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    if not number.is_finite() or not -100 <= number.adjusted() <= 100:
        return None
    return number


@pass_context
def format_date(context, value, format="medium"):
    locale, tzinfo = _where()
    moment = _moment(value, tzinfo)
    if moment is None:
        return value
    return dates.format_date(moment, format=_pattern(format), locale=locale)


@pass_context
def format_time(context, value, format="medium"):
    locale, tzinfo = _where()
    moment = _moment(value, tzinfo)
    if not isinstance(moment, datetime):
        return value
    return dates.format_time(moment, format=_pattern(format), tzinfo=tzinfo, locale=locale)


@pass_context
def format_datetime(context, value, format="medium"):
    locale, tzinfo = _where()
    moment = _moment(value, tzinfo)
    if moment is None:
        return value
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=tzinfo)
    return dates.format_datetime(moment, format=_pattern(format), tzinfo=tzinfo, locale=locale)


@pass_context
def format_number(context, value, format=None):
    number = _number(value)
    if number is None:
        return value
    locale, _ = _where()
    return numbers.format_decimal(number, format=None if format is None else _pattern(format), locale=locale)


@pass_context
def format_fixed(context, value, places=2):
    """`{{ 1234.5|decimal }}` → `1,234.50` (en) / `1.234,50` (de): always `places` fraction digits."""
    number = _number(value)
    if number is None:
        return value
    places = max(0, min(int(places), 20))
    locale, _ = _where()
    pattern = copy.copy(numbers.parse_pattern(locale.decimal_formats.get(None)))
    pattern.frac_prec = (places, places)
    return pattern.apply(number, locale)


@pass_context
def format_percent(context, value, format=None):
    number = _number(value)
    if number is None:
        return value
    locale, _ = _where()
    return numbers.format_percent(number, format=None if format is None else _pattern(format), locale=locale)


@pass_context
def format_currency(context, value, currency="USD", format=None):
    number = _number(value)
    if number is None:
        return value
    code = str(currency).upper()[:3]
    locale, _ = _where()
    return numbers.format_currency(number, code, format=None if format is None else _pattern(format), locale=locale)


FILTERS = {
    "date": format_date,
    "time": format_time,
    "datetime": format_datetime,
    "number": format_number,
    "decimal": format_fixed,
    "percent": format_percent,
    "currency": format_currency,
}
