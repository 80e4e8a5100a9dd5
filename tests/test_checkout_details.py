"""The details form as a customer meets it: real countries with the shop's own first chosen,
payment methods named as the customer knows them, the terms to accept, and an error summary
that links to each field to correct."""

from __future__ import annotations

import re

import pytest

from storefront.catalogue.seed import seed_demo_catalogue
from tests.browser import Page
from tests.journeys import CUSTOMER

page = Page.from_test_client
ETHIOPIA = "ethiopia-yirgacheffe-250-g"


@pytest.fixture
def shopper(app, client):
    with app.app_context():
        seed_demo_catalogue()
    form = page(client.get(f"/p/{ETHIOPIA}")).form("/cart/add")
    client.post(form.action, data={**form.fields, "quantity": "1"})
    return client


def details_page(client) -> str:
    response = client.get("/checkout/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def options(html: str) -> dict[str, str]:
    select = html[html.index('id="country"') : html.index("</select>")]
    return dict(
        re.findall(r'<option (?:selected )?value="([A-Z]{2})"[^>]*>([^<]+)</option>', select)
    )


def test_the_country_list_holds_real_countries_only_with_the_shops_chosen(shopper):
    html = details_page(shopper)
    countries = options(html)
    assert re.search(r'<option selected value="IE">Ireland</option>', html)
    for name in (
        "Pseudo-Accents",
        "Pseudo-Bidi",
        "Unknown Region",
        "Eurozone",
        "European Union",
        "United Nations",
        "Outlying Oceania",
    ):
        assert name not in countries.values(), name
    assert {"DE": "Germany", "KZ": "Kazakhstan", "US": "United States"}.items() <= countries.items()
    assert 240 <= len(countries) <= 250


def test_the_shops_country_is_chosen_and_named_in_its_language(app, shopper):
    # A German shop: its country first, and named in the page's language.
    app.config["SHOP_COUNTRY"] = "DE"
    app.config["LOCALE"] = "de_DE"
    app.config["DEFAULT_LOCALE"] = "de"
    html = details_page(shopper)
    assert re.search(r'<option selected value="DE">Deutschland</option>', html)


def test_payment_methods_are_named_from_settings_with_the_processor_in_small_print(app, shopper):
    app.config["ALTAPAY_METHOD_NAME"] = "Card or MobilePay"
    html = details_page(shopper)
    labels = re.findall(
        r'<label for="gateway-\d">([^<]+)</label>\s*<small class="muted">([^<]+)</small>', html
    )
    assert labels == [
        ("Card", "processed by BPC/RBS"),
        ("Card or MobilePay", "processed by AltaPay"),
        ("Card", "processed by InterPay"),
    ]
    assert "Card (AltaPay)" not in html


def test_the_order_cannot_go_on_without_accepting_the_terms(shopper):
    form = page(shopper.get("/checkout/")).form("/checkout/")
    details = {**form.fields, **CUSTOMER, "gateway": "rbs"}
    del details["terms"]
    response = shopper.post("/checkout/", data=details)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Please accept the terms and conditions to order." in html
    assert '<a href="/terms">terms and conditions</a>' in html

    response = shopper.post("/checkout/", data={**details, "terms": "y"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/checkout/review")


def test_errors_are_summed_up_at_the_top_with_a_link_to_each_field(shopper):
    form = page(shopper.get("/checkout/")).form("/checkout/")
    response = shopper.post(
        "/checkout/", data={"csrf_token": form.fields["csrf_token"], "email": "not-an-address"}
    )
    html = response.get_data(as_text=True)
    summary = html[
        html.index('class="error-summary"') : html.index(
            "</div>", html.index('class="error-summary"')
        )
    ]
    assert 'role="alert"' in html[html.index('<div class="error-summary"') :][:120]
    links = dict(re.findall(r'<a href="#([\w-]+)">([^<]+)</a>', summary))
    assert set(links) == {
        "email",
        "name",
        "address",
        "city",
        "postcode",
        "country",
        "gateway-0",
        "terms",
    }
    assert links["email"] == "Email: Invalid email address."
    assert links["terms"].endswith("Please accept the terms and conditions to order.")
    assert links["gateway-0"] == "Pay with: Please choose how you want to pay."
    for anchor in links:
        assert f'id="{anchor}"' in html, anchor
