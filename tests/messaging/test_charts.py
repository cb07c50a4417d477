"""The admin's server-drawn charts (messaging.charts); the browser test measures them drawn."""

import re
from datetime import UTC, datetime

from messaging import charts


def test_the_last_date_ends_at_the_right_edge_and_the_others_are_centred_under_their_day():
    now = datetime(2026, 11, 30, 15, tzinfo=UTC)
    period = charts.last_days(now)
    empty = {"sent": 0, "delivered": 0, "bounced": 0, "complained": 0}
    svg = charts.activity_chart(title="Acme", period=period, buckets={d: empty for d in period.starts})
    ticks = re.findall(
        r'<text x="([\d.]+)" y="\d+" class="pp-axis" text-anchor="(\w+)">([A-Z][a-z]{2} \d+)</text>', svg
    )
    assert [label for _, _, label in ticks] == ["Nov 1", "Nov 6", "Nov 11", "Nov 16", "Nov 21", "Nov 26", "Nov 30"]
    assert [anchor for _, anchor, _ in ticks] == ["middle"] * 6 + ["end"]
    # The last label's point is the plot's right edge, inside the drawing's width.
    assert float(ticks[-1][0]) == charts.WIDTH - charts.RIGHT
    # The rest stay clear of the edges, centred (11 px type: a date is at most ~40 px wide).
    assert all(charts.LEFT - 1 <= float(x) <= charts.WIDTH - charts.RIGHT - 40 for x, _, _ in ticks[:-1])
