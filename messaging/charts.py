"""The admin's charts, drawn on the server as inline SVG: no script, no library, nothing fetched.

`activity_chart` draws sent / delivered / bounced / complained per UTC day over the last 30 days
from the stats rollup (messaging.stats); `rates_panel` sets the current bounce, complaint and
block rates beside the thresholds that auto-pause a sender (messaging.feedback.reputation).
Every figure drawn is also written out: each point has a tooltip (`<title>`), and a table under
the chart holds the numbers, so nothing is only a colour.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from messaging import stats
from messaging.feedback.reputation import ReputationStats, percent

DAYS = 30
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 30
SERIES = (
    ("sent", "Sent", "#2563eb"),
    ("delivered", "Delivered", "#15803d"),
    ("bounced", "Bounced", "#c2410c"),
    ("complained", "Complained", "#be123c"),
)


def last_days(now: datetime | None = None, days: int = DAYS) -> stats.Period:
    """The last `days` UTC days, today included."""
    now = (now or timezone.now()).astimezone(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return stats.period_of(since=today - timedelta(days=days - 1), until=now, interval="day", zone="UTC")


def activity(*, workspace_id: str, sender_id: str | None = None, now: datetime | None = None):
    period = last_days(now)
    buckets = stats.event_counts(workspace_id=workspace_id, livemode=True, period=period, sender_id=sender_id)
    return period, buckets


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10ⁿ at or above `value` (at least 4, so four grid lines are whole numbers)."""
    ceiling = 4
    step = 1
    while ceiling < value:
        for factor in (1, 2, 5):
            if factor * step * 4 >= value:
                return factor * step * 4
        step *= 10
    return ceiling


def activity_chart(*, title: str, period: stats.Period, buckets: dict) -> SafeString:
    days = list(period.starts)
    top = _nice_ceiling(max((buckets[d][key] for d in days for key, _, _ in SERIES), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(days) - 1, 1)

    # format_html escapes its arguments before formatting them, so coordinates go in as text.
    def x(i):
        return f"{LEFT + i * step:.1f}"

    def y(value):
        return f"{TOP + plot_h - plot_h * value / top:.1f}"

    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" class="pp-grid"/>'
        '<text x="{}" y="{}" class="pp-axis" text-anchor="end">{}</text>',
        (
            (
                LEFT,
                WIDTH - RIGHT,
                y(top * k / 4),
                y(top * k / 4),
                LEFT - 6,
                f"{float(y(top * k / 4)) + 4:.1f}",
                top * k // 4,
            )
            for k in range(5)
        ),
    )
    # Each date centred under its day, except the last: it sits at the plot's right edge, so it
    # ends there (centred, half of it would fall outside the drawing and be cut off).
    last = len(days) - 1
    ticks = format_html_join(
        "",
        '<text x="{}" y="{}" class="pp-axis" text-anchor="{}">{}</text>',
        (
            (x(i), HEIGHT - 10, "end" if i == last and i else "middle", f"{d:%b} {d.day}")
            for i, d in enumerate(days)
            if i % 5 == 0 or i == last
        ),
    )
    lines = []
    for key, label, colour in SERIES:
        points = " ".join(f"{x(i)},{y(buckets[d][key])}" for i, d in enumerate(days))
        dots = format_html_join(
            "",
            '<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{}: {} {}</title></circle>',
            (
                (x(i), y(buckets[d][key]), colour, f"{d:%b} {d.day}", buckets[d][key], label.lower())
                for i, d in enumerate(days)
            ),
        )
        lines.append(
            format_html(
                '<g class="pp-series pp-series-{}"><polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>{}</g>',
                key,
                points,
                colour,
                dots,
            )
        )
    legend = format_html_join(
        "",
        '<span class="pp-legend-item"><span class="pp-swatch" style="background: {}"></span>{} {}</span>',
        ((colour, label, sum(buckets[d][key] for d in days)) for key, label, colour in SERIES),
    )
    header = format_html_join("", "<th scope='col'>{}</th>", ((label,) for _, label, _ in SERIES))
    rows = format_html_join(
        "",
        "<tr><th scope='row'>{}</th>{}</tr>",
        (
            (
                f"{d:%Y-%m-%d}",
                format_html_join("", "<td>{}</td>", ((buckets[d][key],) for key, _, _ in SERIES)),
            )
            for d in days
        ),
    )
    return format_html(
        '<figure class="pp-chart"><figcaption>{} <span class="pp-legend">{}</span></figcaption>'
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="100%" role="img" aria-label="{}">'
        "<title>{}</title>{}{}{}</svg>"
        "<details><summary>The numbers</summary><table class='pp-chart-table'><thead><tr><th scope='col'>Day (UTC)</th>"
        "{}</tr></thead><tbody>{}</tbody></table></details></figure>",
        title,
        legend,
        WIDTH,
        HEIGHT,
        f"{title}: sent, delivered, bounced and complained per day",
        title,
        grid,
        ticks,
        mark_safe("".join(lines)),  # each line built with format_html above
        header,
        rows,
    )


@dataclass(frozen=True)
class Rate:
    kind: str
    count: int
    volume: int
    threshold: Decimal

    @property
    def value(self) -> Decimal:
        return Decimal(self.count) / self.volume if self.volume else Decimal(0)

    @property
    def above(self) -> bool:
        # The auto-pause's own comparison: strictly above, as exact decimals.
        return self.volume > 0 and self.count > self.threshold * self.volume


def rate_rows(reputation: ReputationStats, workspace) -> list[Rate]:
    return [
        Rate("bounce", reputation.bounced, reputation.volume, workspace.bounce_rate_threshold),
        Rate("complaint", reputation.complained, reputation.volume, workspace.complaint_rate_threshold),
        Rate("block", reputation.blocked, reputation.volume, workspace.block_rate_threshold),
    ]


def _meter(rate: Rate) -> SafeString:
    """A bar of the rate on a scale of twice the threshold, with the threshold marked at the middle."""
    scale = max(rate.threshold * 2, rate.value, Decimal("0.0001"))
    width = 200
    filled = float(min(rate.value / scale, 1)) * width
    mark = float(rate.threshold / scale) * width
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} 14" width="{}" height="14" aria-hidden="true" '
        'class="pp-meter"><rect x="0" y="2" width="{}" height="10" rx="2" class="pp-meter-track"/>'
        '<rect x="0" y="2" width="{}" height="10" rx="2" class="pp-meter-{}"/>'
        '<line x1="{}" x2="{}" y1="0" y2="14" class="pp-meter-threshold"/></svg>',
        width,
        width,
        width,
        f"{filled:.1f}",
        "over" if rate.above else "ok",
        f"{mark:.1f}",
        f"{mark:.1f}",
    )


def rates_panel(*, title: str, reputation: ReputationStats, workspace, note: str = "") -> SafeString:
    """The window's rates against the workspace's pause thresholds, as numbers and as bars."""
    days = settings.PUFFERPOST_REPUTATION_WINDOW_DAYS
    minimum = workspace.reputation_min_volume
    if reputation.volume == 0:
        basis = f"No live mail left in the last {days} days."
    elif reputation.volume < minimum:
        basis = f"{reputation.volume} messages in the last {days} days; judged from {minimum}, so nothing pauses yet."
    else:
        basis = f"{reputation.volume} messages in the last {days} days (judged from {minimum})."
    rows = format_html_join(
        "",
        '<tr class="pp-rate pp-rate-{}{}"><th scope="row">{}</th><td class="pp-rate-value">{}</td><td>{}</td>'
        '<td class="pp-rate-threshold">pauses above {}</td><td class="pp-rate-verdict">{}</td></tr>',
        (
            (
                rate.kind,
                " pp-rate-over" if rate.above else "",
                rate.kind.capitalize(),
                f"{percent(rate.value)} ({rate.count})",
                _meter(rate),
                percent(rate.threshold),
                "above the threshold" if rate.above else "within",
            )
            for rate in rate_rows(reputation, workspace)
        ),
    )
    return format_html(
        '<section class="pp-rates"><h3>{}</h3><p class="pp-rates-basis">{}{}</p>'
        '<table class="pp-rates-table"><tbody>{}</tbody></table></section>',
        title,
        basis,
        format_html(" {}", note) if note else "",
        rows,
    )
