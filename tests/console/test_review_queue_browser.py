"""The sender review queue in a real browser: Debian's Chromium, driven by Playwright, against live_server.

The browser logs in with a password, reads the queue, and approves, pauses and resumes a sender
through the admin actions; after each step the database must say what the page said.
Screenshots land in tests/artifacts/ (gitignored) for a person to look at.
"""

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from messaging import lifecycle
from messaging.models import Message
from pufferpost.services import api_key_create
from senders.models import Sender, SenderStateChange
from tests.domains.factories import IssuedDomainFactory, VerifiedDomainFactory
from tests.factories import DomainFactory, TemplateFactory, TemplateVersionFactory, WorkspaceFactory
from tests.helpers import CONSOLE_CHANGELISTS
from tests.messaging.factories import MessageFactory, SuppressionFactory, UnsubscribeGroupFactory
from tests.senders.factories import ActiveSenderFactory, PausedSenderFactory, SenderFactory

CHROMIUM = Path("/usr/bin/chromium")
# No GPU, no sandbox (we are root), and none of Chromium's own calls home: the machine has no network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PASSWORD = "correct horse battery staple"
ADDRESS = "receipts@mail.acme.example"
LONG_NAME = "Acme International Holdings, Logistics and Parcel Services Division (EMEA)"


@pytest.fixture
def browser_page(live_server, monkeypatch):
    """A Chromium page that may only talk to live_server; any other request is aborted and reported."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: run bin/ensure-test-tools (or as root: apt-get install -y chromium).",
            pytrace=False,
        )
    # Playwright's sync API keeps an event loop running in this thread, so Django would refuse the
    # test's own ORM calls as "async"; they are plain sync calls between browser steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    allowed = urlsplit(live_server.url).netloc
    stray, page_errors = [], []

    def only_live_server(route):
        if urlsplit(route.request.url).netloc == allowed:
            route.continue_()
        else:
            stray.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
            context.route("**/*", only_live_server)
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            yield page
        finally:
            browser.close()
            # While Playwright runs, Django's connections live in another context (asgiref's Local is a
            # context variable): the test's ORM calls opened their own connection here; close it here.
            connections.close_all()
    assert stray == [], f"the browser tried to leave live_server: {stray}"
    assert page_errors == [], f"JavaScript errors on the page: {page_errors}"


@pytest.fixture
def reviewer(django_user_model):
    """Staff with only the sender permissions, logging in with a password like a person."""
    user = django_user_model.objects.create_user("reviewer", password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="senders"))
    return user


def run_action(page, *, action: str, label: str, reason: str, screenshot: str | None = None):
    """Tick the sender's row, pick the action, type the reason on the confirmation page and confirm."""
    page.locator("#result_list tbody tr", has_text=ADDRESS).locator("input.action-select").check()
    page.locator("select[name=action]").select_option(action)
    page.get_by_role("button", name="Go").click()
    expect(page.locator("#content h1")).to_have_text(f"{label} senders")
    expect(page.locator("#content")).to_contain_text(ADDRESS)
    page.locator("textarea[name=reason]").fill(reason)
    if screenshot:
        page.screenshot(path=ARTIFACTS / screenshot, full_page=True)
    page.locator(f"input[type=submit][value={label}]").click()


def assert_state(*, state: str, reason: str, changes: list[tuple[str, str]], actor):
    sender = Sender.objects.get(from_address=ADDRESS)
    assert (sender.state, sender.state_reason) == (state, reason)
    rows = list(SenderStateChange.objects.filter(sender=sender).order_by("created_at", "id"))
    assert [(c.from_state, c.to_state) for c in rows] == changes
    assert rows[-1].reason == reason
    assert all(c.actor == actor and c.actor_label == actor.username for c in rows)


def test_staff_approve_pause_and_resume_a_sender_in_the_browser(browser_page, reviewer):
    page = browser_page
    acme = WorkspaceFactory(name="Acme")
    VerifiedDomainFactory(workspace=acme, domain="mail.acme.example")
    SenderFactory(workspace=acme, from_address=ADDRESS, display_name="Acme Receipts")
    globex = WorkspaceFactory(name="Globex")
    IssuedDomainFactory(workspace=globex, domain="news.globex.example")
    SenderFactory(workspace=globex, from_address="hello@unknown.globex.example", display_name="Globex")
    ActiveSenderFactory(workspace=globex, from_address="news@news.globex.example", display_name="Globex News")
    PausedSenderFactory(workspace=globex, from_address="deals@news.globex.example", display_name="Globex Deals")

    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.locator("#id_username").fill("reviewer")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    page.locator("tr.model-sender a", has_text="Senders").first.click()

    expect(page).to_have_url(re.compile(r"/admin/senders/sender/$"))
    counts = page.locator("nav.pp-queue-counts")
    expect(counts).to_contain_text("Under review: 2")
    expect(counts).to_contain_text("Active: 1")
    expect(counts).to_contain_text("Paused: 1")
    expect(counts).to_contain_text("All: 4")
    row = page.locator("#result_list tbody tr", has_text=ADDRESS)
    expect(row.locator(".pp-badge-verified")).to_have_text("verified")
    expect(row.locator(".pp-badge-under_review")).to_have_text("Under review")
    other = page.locator("#result_list tbody tr", has_text="hello@unknown.globex.example")
    expect(other.locator(".pp-badge-none")).to_have_text("no domain")
    first_rows = page.locator("#result_list tbody tr .field-from_address")
    expect(first_rows).to_have_text(
        [ADDRESS, "hello@unknown.globex.example", re.compile("news@"), re.compile("deals@")]
    )
    page.screenshot(path=ARTIFACTS / "review-queue.png", full_page=True)

    page.locator("nav.pp-queue-counts a", has_text="Under review").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    page.locator("#changelist-filter a", has_text="Verified").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list tbody tr")).to_contain_text(ADDRESS)
    page.locator("nav.pp-queue-counts a", has_text="All").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(4)

    run_action(
        page, action="approve", label="Approve", reason="Known customer; DKIM verified.", screenshot="reason.png"
    )
    expect(page.locator("ul.messagelist li.info")).to_have_text("Approved 1 sender.")
    expect(page.locator("#result_list tbody tr", has_text=ADDRESS).locator(".pp-badge-active")).to_have_text("Active")
    expect(page.locator("nav.pp-queue-counts")).to_contain_text("Active: 2")
    page.screenshot(path=ARTIFACTS / "approved.png", full_page=True)
    assert_state(
        state="active",
        reason="Known customer; DKIM verified.",
        changes=[("under_review", "active")],
        actor=reviewer,
    )

    run_action(page, action="pause", label="Pause", reason="Complaints from a spam trap.")
    expect(page.locator("ul.messagelist li.info")).to_have_text("Paused 1 sender.")
    expect(page.locator("#result_list tbody tr", has_text=ADDRESS).locator(".pp-badge-paused")).to_have_text("Paused")
    page.screenshot(path=ARTIFACTS / "paused.png", full_page=True)
    assert_state(
        state="paused",
        reason="Complaints from a spam trap.",
        changes=[("under_review", "active"), ("active", "paused")],
        actor=reviewer,
    )

    run_action(page, action="resume", label="Resume", reason="Customer cleaned the list.")
    expect(page.locator("ul.messagelist li.info")).to_have_text("Resumed 1 sender.")
    expect(page.locator("#result_list tbody tr", has_text=ADDRESS).locator(".pp-badge-active")).to_have_text("Active")
    page.screenshot(path=ARTIFACTS / "resumed.png", full_page=True)
    assert_state(
        state="active",
        reason="Customer cleaned the list.",
        changes=[("under_review", "active"), ("active", "paused"), ("paused", "active")],
        actor=reviewer,
    )

    page.locator("#result_list tbody tr", has_text=ADDRESS).locator("th a, td a").first.click()
    expect(page.locator("#content")).to_contain_text("Customer cleaned the list.")
    page.screenshot(path=ARTIFACTS / "history.png", full_page=True)


# What one line of a changelist row measures in Chromium with the admin's stylesheet (13 px text,
# 8 px padding, a 20 px badge); a wrapped cell is at least one more line.
ONE_LINE_PX = 40
MEASURE = """() => {
    const table = document.querySelector('#result_list');
    const box = table.closest('.results');
    const cells = [...table.querySelectorAll('tbody td, tbody th')];
    return {
        // Columns hidden behind the list's horizontal scroll bar, or past the window's edge.
        overflow: Math.max(table.scrollWidth - box.clientWidth,
                           box.getBoundingClientRect().right - document.documentElement.clientWidth),
        tallest: Math.max(...cells.map(c => c.getBoundingClientRect().height)),
        cut: [...table.querySelectorAll('.pp-cut')].filter(s => s.scrollWidth > s.clientWidth)
            .map(s => s.getAttribute('title')),
    };
}"""


def log_in(page, username):
    page.goto("/admin/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()


def screenshot(page, name):
    path = ARTIFACTS / name
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")
    return path


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", password=PASSWORD)


def test_every_changelist_fits_1280_px_on_one_line_per_row(browser_page, operator, settings):
    settings.PUFFERPOST_CONSOLE_NAME = "Acme Mail Console"
    page = browser_page
    workspace = WorkspaceFactory(name=LONG_NAME)
    api_key_create(workspace=workspace, name="Production key for the order and invoice service")
    DomainFactory(workspace=workspace, domain="transactional-mail.eu-west.acme-international.example")
    sender = ActiveSenderFactory(
        workspace=workspace,
        from_address="order-confirmations-and-receipts@transactional-mail.eu-west.acme-international.example",
        display_name="Acme International Order Confirmations",
    )
    TemplateFactory(workspace=workspace, name="Order confirmation with invoice attachment (EMEA)")
    MessageFactory(workspace=workspace, sender=sender, to="a.rather.long.recipient.address@customers.example")
    SuppressionFactory(workspace=workspace, email="a.long.suppressed.address@customers.example")
    UnsubscribeGroupFactory(workspace=workspace, name="Product news, offers and the monthly digest")

    log_in(page, "operator")
    expect(page.locator("#site-name")).to_have_text("Acme Mail Console")
    problems = []
    for url in CONSOLE_CHANGELISTS:
        page.goto(url)
        expect(page).to_have_title(re.compile(r"\| Acme Mail Console$"))
        measured = page.evaluate(MEASURE)
        shot = screenshot(page, url.strip("/").replace("/", "-") + ".png")
        if measured["overflow"] > 0:
            problems.append(f"{url} hides {measured['overflow']} px of columns at 1280 px ({shot})")
        if measured["tallest"] > ONE_LINE_PX:
            problems.append(f"{url} wraps: a cell is {measured['tallest']} px tall ({shot})")
    assert problems == [], "\n".join(problems)
    page.goto("/admin/messaging/message/")
    # Cut on the page, whole in the title.
    assert "a.rather.long.recipient.address@customers.example" in page.evaluate(MEASURE)["cut"]


def test_staff_review_a_sender_from_its_own_page(browser_page, reviewer):
    page = browser_page
    acme = WorkspaceFactory(name="Acme")
    VerifiedDomainFactory(workspace=acme, domain="mail.acme.example")
    sender = SenderFactory(workspace=acme, from_address=ADDRESS, display_name="Acme Receipts")

    log_in(page, "reviewer")
    page.goto(f"/admin/senders/sender/{sender.pk}/change/")
    review = page.locator("section.pp-review")
    expect(review.locator("button[name=verb]")).to_have_text(["Approve"])
    review.locator("textarea[name=reason]").fill("Known customer; DKIM verified.")
    screenshot(page, "sender-page-review.png")
    review.get_by_role("button", name="Approve").click()
    expect(page.locator("ul.messagelist li.success")).to_have_text(f"Approved {ADDRESS}.")
    expect(review.locator("button[name=verb]")).to_have_text(["Pause"])
    assert_state(
        state="active", reason="Known customer; DKIM verified.", changes=[("under_review", "active")], actor=reviewer
    )

    # The reason is required in the browser too: an empty one never reaches the server.
    review.get_by_role("button", name="Pause").click()
    expect(page.locator("ul.messagelist li")).to_have_text([f"Approved {ADDRESS}."])
    assert Sender.objects.get(pk=sender.pk).state == "active"
    review.locator("textarea[name=reason]").fill("Complaints from a spam trap.")
    review.get_by_role("button", name="Pause").click()
    expect(page.locator("ul.messagelist li.success")).to_have_text(f"Paused {ADDRESS}.")
    review.locator("textarea[name=reason]").fill("Customer cleaned the list.")
    review.get_by_role("button", name="Resume").click()
    expect(page.locator("ul.messagelist li.success")).to_have_text(f"Resumed {ADDRESS}.")
    screenshot(page, "sender-page-resumed.png")
    assert_state(
        state="active",
        reason="Customer cleaned the list.",
        changes=[("under_review", "active"), ("active", "paused"), ("paused", "active")],
        actor=reviewer,
    )


def seed_thirty_days(sender, *, now):
    """30 days of a sender's live mail through the lifecycle services, each day's messages created and
    moved on that day: mostly delivered, a few bounces (every third a block), complaints now and then,
    and more bounces this week (enough to cross the 5 % bounce threshold).
    Returns the outcome counts per UTC day, as the chart must draw them."""
    template = TemplateFactory(workspace=sender.workspace)
    version = TemplateVersionFactory(template=template)
    expected = {}
    for age in range(30):
        day = (now - timedelta(days=age)).replace(hour=10, minute=0, second=0, microsecond=0)
        total, bounced, complained = 12 + (age * 5) % 7, age % 4 + (age < 7), 1 if age % 9 == 0 else 0
        ids = [
            m.pk
            for m in MessageFactory.create_batch(
                total, workspace=sender.workspace, sender=sender, template=template, template_version=version
            )
        ]
        Message.objects.filter(pk__in=ids).update(created_at=day)
        lifecycle.messages_transition_bulk(message_ids=ids, to_status="queued", occurred_at=day)
        bounce_ids, ok_ids = ids[:bounced], ids[bounced:]
        for i, pk in enumerate(bounce_ids):
            klass = "block" if i == 2 else "hard"
            lifecycle.messages_transition_bulk(
                message_ids=[pk],
                to_status="bounced",
                occurred_at=day,
                details={pk: {"bounce_class": klass}},
                bounce_class=klass,
            )
        lifecycle.messages_transition_bulk(message_ids=ok_ids, to_status="sent", occurred_at=day)
        lifecycle.messages_transition_bulk(
            message_ids=ok_ids, to_status="delivered", occurred_at=day + timedelta(minutes=1)
        )
        lifecycle.messages_transition_bulk(
            message_ids=ok_ids[:complained], to_status="complained", occurred_at=day + timedelta(hours=2)
        )
        expected[day.date()] = {
            "sent": len(ok_ids),
            "delivered": len(ok_ids),
            "bounced": bounced,
            "complained": complained,
            "at": day,
            "blocked": int(bounced > 2),
        }
    return expected


def test_the_sender_and_workspace_pages_chart_30_days_and_rates_beside_the_review(browser_page, reviewer, operator):
    page = browser_page
    now = timezone.now()
    acme = WorkspaceFactory(name="Acme", reputation_min_volume=50)
    VerifiedDomainFactory(workspace=acme, domain="mail.acme.example")
    sender = ActiveSenderFactory(workspace=acme, from_address=ADDRESS, display_name="Acme Receipts")
    expected = seed_thirty_days(sender, now=now)
    week = [day for day in expected.values() if day["at"] >= now - timedelta(days=7)]
    volume = sum(day["sent"] + day["bounced"] for day in week)
    bounces = sum(day["bounced"] - day["blocked"] for day in week)  # blocks have their own rate

    log_in(page, "reviewer")
    page.goto(f"/admin/senders/sender/{sender.pk}/change/")
    review = page.locator("section.pp-review")
    chart = review.locator(".pp-review-panel figure.pp-chart")
    expect(chart.locator("svg polyline")).to_have_count(4)
    expect(chart.locator("svg circle")).to_have_count(4 * 30)
    for key, label in (
        ("sent", "Sent"),
        ("delivered", "Delivered"),
        ("bounced", "Bounced"),
        ("complained", "Complained"),
    ):
        total = sum(day[key] for day in expected.values())
        expect(chart.locator(".pp-legend")).to_contain_text(f"{label} {total}")
    # The numbers table holds what the lines draw, day by day.
    chart.locator("details summary").click()
    today = now.date()
    row = chart.locator("tbody tr", has_text=f"{today:%Y-%m-%d}")
    expect(row.locator("td")).to_have_text(
        [str(expected[today][k]) for k in ("sent", "delivered", "bounced", "complained")]
    )
    # Every label is drawn whole, inside the SVG's own box: the last date ends at the right edge
    # instead of being centred on it and cut off.
    labels = chart.locator("svg").evaluate(
        """svg => [...svg.querySelectorAll("text.pp-axis")].map(t => {
               const b = t.getBBox();
               return {text: t.textContent, left: b.x, right: b.x + b.width, width: svg.viewBox.baseVal.width};
           })"""
    )
    dates = [label for label in labels if not label["text"].isdigit()]
    assert dates[-1]["text"] == f"{today:%b} {today.day}"
    for label in labels:
        assert label["left"] >= 0 and label["right"] <= label["width"], label
    rates = review.locator(".pp-rates")
    expect(rates).to_contain_text(f"{volume} messages in the last 7 days")
    assert bounces * 100 > 5 * volume  # the seed crosses the 5 % bounce threshold
    expect(rates.locator("tr.pp-rate-bounce")).to_have_class(re.compile("pp-rate-over"))
    expect(rates.locator("tr.pp-rate-bounce .pp-rate-value")).to_have_text(re.compile(rf"^\d+\.\d+% \({bounces}\)$"))
    expect(rates.locator("tr.pp-rate-bounce .pp-rate-threshold")).to_have_text("pauses above 5.0%")
    expect(review.locator(".pp-review-actions button[name=verb]")).to_have_text(["Pause"])
    # Beside, not below: the actions sit to the right of the charts at 1280 px.
    panel_box, actions_box = (
        review.locator(".pp-review-panel").bounding_box(),
        review.locator(".pp-review-actions").bounding_box(),
    )
    assert actions_box["x"] >= panel_box["x"] + panel_box["width"] - 1 and abs(actions_box["y"] - panel_box["y"]) < 5
    screenshot(page, "sender-page-charts.png")

    review.locator("textarea[name=reason]").fill("Bounce rate above 5 % this week.")
    review.get_by_role("button", name="Pause").click()
    expect(page.locator("ul.messagelist li.success")).to_have_text(f"Paused {ADDRESS}.")
    expect(page.locator("section.pp-review figure.pp-chart svg polyline")).to_have_count(4)
    assert Sender.objects.get(pk=sender.pk).state == "paused"

    page.context.clear_cookies()
    log_in(page, "operator")
    page.goto(f"/admin/pufferpost/workspace/{acme.pk}/change/")
    panel = page.locator(".pp-console-panel")
    expect(panel.locator("figure.pp-chart svg polyline")).to_have_count(4)
    expect(panel.locator(".pp-rates")).to_contain_text("Each sender is paused on its own rates")
    expect(panel.locator("tr.pp-rate-block .pp-rate-threshold")).to_have_text("pauses above 10.0%")
    expect(page.locator("input[name=bounce_rate_threshold]")).to_have_value("5")
    screenshot(page, "workspace-page-charts.png")
