import pytest

from messaging.tracking.links import (
    BadToken,
    click_from_token,
    instrument_html,
    message_id_from_open_token,
    message_id_from_unsubscribe_token,
    unsubscribe_url,
)

MID = "msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.PUFFERPOST_PUBLIC_URL = "https://links.acme.test"


def test_unsubscribe_links_round_trip_and_refuse_alterations():
    url = unsubscribe_url(MID)
    assert url.startswith("https://links.acme.test/u/")
    token = url.rsplit("/", 1)[1]
    assert message_id_from_unsubscribe_token(token) == MID
    with pytest.raises(BadToken):
        message_id_from_unsubscribe_token(token.replace(MID, "msg_01J9Z2K3M4N5P6Q7R8S9T0V1W3"))
    with pytest.raises(BadToken):
        message_id_from_open_token(token)  # a token of one kind is not valid as another


def test_click_rewriting_signs_each_target_and_leaves_other_links_alone():
    html = (
        '<html><body><a href="https://shop.example.com/o/9?a=1&amp;b=2">Order</a>'
        '<a href="mailto:help@example.com">Mail</a>'
        '<a href="https://links.acme.test/u/x">Unsub</a></body></html>'
    )
    out = instrument_html(html, message_id=MID, opens=False, clicks=True)
    assert "https://shop.example.com" not in out
    assert 'href="mailto:help@example.com"' in out
    assert 'href="https://links.acme.test/u/x"' in out
    token = out.split('href="https://links.acme.test/t/c/')[1].split('"')[0]
    assert click_from_token(token) == (MID, "https://shop.example.com/o/9?a=1&b=2")
    with pytest.raises(BadToken):
        click_from_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))


def test_the_open_pixel_goes_before_the_end_of_the_body_only_when_switched_on():
    html = "<html><body><p>Hi</p></body></html>"
    assert instrument_html(html, message_id=MID, opens=False, clicks=False) == html
    out = instrument_html(html, message_id=MID, opens=True, clicks=False)
    assert out.index('<img src="https://links.acme.test/t/o/') < out.index("</body>")
    token = out.split("/t/o/")[1].split('"')[0]
    assert message_id_from_open_token(token) == MID
