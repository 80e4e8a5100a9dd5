"""The shop's own pages (contact, terms, returns, privacy), the footer that links them, and the
test-mode banner shown while the sandbox gateway is mounted."""

from __future__ import annotations

import re

import pytest

from tests.factories import make_app

PAGES = {
    "/contact": "Contact us",
    "/terms": "Terms and conditions",
    "/returns": "Returns and refunds",
    "/privacy": "Privacy",
}


@pytest.mark.parametrize(("path", "title"), PAGES.items())
def test_each_page_has_its_title_and_text(client, path, title):
    response = client.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"<h1>{title}</h1>" in html
    assert f"<title>{title} ·" in html
    assert response.headers["Cache-Control"] == "public, max-age=300"


def test_an_unknown_page_is_not_found(client):
    assert client.get("/imprint").status_code == 404


def test_the_footer_links_every_page_and_the_order_lookup(client):
    html = client.get("/cart/").get_data(as_text=True)
    footer = html[html.index('<footer class="site-footer">') :]
    links = re.findall(r'href="([^"]+)"', footer)
    assert links == ["/order/lookup", "/contact", "/returns", "/terms", "/privacy"]
    for link in links:
        assert client.get(link).status_code == 200, link


def test_the_contact_page_gives_the_contact_address_or_the_sender(app, client):
    assert "mailto:shop@storefront.invalid" in client.get("/contact").get_data(as_text=True)
    app.config["CONTACT_EMAIL"] = "help@example.test"
    assert "mailto:help@example.test" in client.get("/contact").get_data(as_text=True)


def test_test_mode_is_shown_on_every_page_only_while_the_sandbox_is_mounted(tmp_path, client):
    for path in ("/", "/cart/", "/terms", "/order/lookup"):
        assert "Test mode" not in client.get(path).get_data(as_text=True), path

    demo = make_app(tmp_path / "demo", SANDBOX=True)
    browser = demo.test_client()
    for path in ("/", "/cart/", "/terms", "/order/lookup"):
        html = browser.get(path).get_data(as_text=True)
        assert "<strong>Test mode</strong>" in html, path
