"""The sender review queue in a real browser: Debian's Chromium, driven by Playwright, against live_server.

The browser logs in with a password, reads the queue, and approves, pauses and resumes a sender
through the admin actions; after each step the database must say what the page said.
Screenshots land in tests/artifacts/ (gitignored) for a person to look at.
"""

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from pufferpost.services import api_key_create
from senders.models import Sender, SenderStateChange
from tests.domains.factories import IssuedDomainFactory, VerifiedDomainFactory
from tests.factories import DomainFactory, TemplateFactory, WorkspaceFactory
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


CHANGELISTS = [
    "/admin/pufferpost/workspace/",
    "/admin/pufferpost/apikey/",
    "/admin/senders/sender/",
    "/admin/domains/domain/",
    "/admin/templates_app/template/",
    "/admin/messaging/message/",
    "/admin/messaging/suppression/",
    "/admin/messaging/unsubscribegroup/",
    "/admin/messaging/senderreputation/",
]
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
    for url in CHANGELISTS:
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
