"""The details form as a customer meets it: real countries with the shop's own first chosen,
payment methods named as the customer knows them, the terms to accept, an optional phone, an
optional billing address and a note, and an error summary that links to each field to correct."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default as email_policy

import pytest

from storefront.catalogue.seed import seed_demo_catalogue
from tests.admin_steps import Back, make_staff
from tests.browser import Browser, Page
from tests.journeys import (
    CUSTOMER,
    add_to_cart,
    latest_order,
    mail_files,
    pay_rbs,
    product,
)

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


def summary_links(html: str) -> dict[str, str]:
    """The error summary's links: the anchor of each field to correct, and its text."""
    start = html.index('class="error-summary"')
    summary = html[start : html.index("</div>", start)]
    return dict(re.findall(r'<a href="#([\w-]+)">([^<]+)</a>', summary))


def send_details(client, untick: tuple[str, ...] = (), **typed):
    """The details form as shown, filled in as CUSTOMER with ``typed`` on top, the boxes named
    in ``untick`` unticked: the response to sending it."""
    form = page(client.get("/checkout/")).form("/checkout/")
    data = {**form.fields, **CUSTOMER, "gateway": "rbs", **typed}
    for name in untick:
        data.pop(name, None)
    return client.post("/checkout/", data=data)


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
    assert 'role="alert"' in html[html.index('<div class="error-summary"') :][:120]
    links = summary_links(html)
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


BILLING = {
    "billing_name": "Bob Payer",
    "billing_address": "2 Bank Street",
    "billing_city": "Cork",
    "billing_postcode": "T12 AB34",
    "billing_country": "DE",
}


def test_the_form_offers_a_phone_a_billing_address_and_a_note(shopper):
    html = details_page(shopper)
    form = page(shopper.get("/checkout/")).form("/checkout/")
    [phone] = re.findall(r'<input[^>]* id="phone"[^>]*>', html)
    assert 'autocomplete="tel"' in phone and 'type="tel"' in phone
    assert "required" not in phone  # optional: only for the courier
    assert "Only for the courier" in html
    # Ticked by default; without JavaScript the billing fields are always in the page.
    assert form.fields["billing_same"] == "y"
    assert '<fieldset class="field billing" id="billing">' in html
    for name in BILLING:
        assert f'id="{name}"' in html, name
    assert re.search(
        r'<option selected value="IE">Ireland</option>', html[html.index("billing_country") :]
    )
    assert re.search(r'<textarea[^>]* id="note"', html)


@pytest.mark.parametrize(
    "phone", ["+353 1 234 5678", "(01) 234-5678", "0861234567", "+1-555-0100 00", "123456"]
)
def test_a_phone_number_as_people_type_it_is_accepted_and_kept_as_typed(shopper, phone):
    response = send_details(shopper, phone=f"  {phone} ")
    assert response.status_code == 303
    html = shopper.get("/checkout/review").get_data(as_text=True)
    assert f"<br>{phone}</p>" in html


def test_no_phone_is_fine(shopper):
    response = send_details(shopper, phone="")
    assert response.status_code == 303


@pytest.mark.parametrize(
    "phone", ["12345", "call me", "+353 1 234 567 8901 2345 678", "0861234567 ext. 5", "#12345678"]
)
def test_a_phone_number_that_is_none_is_refused_with_a_clear_error(shopper, phone):
    response = send_details(shopper, phone=phone)
    assert response.status_code == 200
    links = summary_links(response.get_data(as_text=True))
    assert links == {
        "phone": "Phone (optional): Please enter a phone number of 6 to 20 digits"
        " (spaces, +, - and brackets are fine)."
    }


def test_details_sent_without_the_billing_fields_have_no_billing_address_of_their_own(shopper):
    # As a client that never showed the form sends them: no box, and no billing field either.
    form = page(shopper.get("/checkout/")).form("/checkout/")
    data = {"csrf_token": form.fields["csrf_token"], "gateway": "rbs", **CUSTOMER}
    assert shopper.post("/checkout/", data=data).status_code == 303
    html = shopper.get("/checkout/review").get_data(as_text=True)
    assert "The same as the delivery address" in html


def test_with_the_box_ticked_the_billing_fields_are_ignored(shopper):
    # Whatever they hold: a half-filled, even a broken, billing address is not read.
    response = send_details(shopper, billing_name="Bob\x00", billing_city="", billing_country="")
    assert response.status_code == 303
    html = shopper.get("/checkout/review").get_data(as_text=True)
    assert "The same as the delivery address" in html
    assert "Bob" not in html


def test_a_different_billing_address_needs_every_field_and_says_so_at_the_top(shopper):
    response = send_details(shopper, untick=("billing_same",), **{name: "" for name in BILLING})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    links = summary_links(html)
    expected = "Please fill this in, or tick “Billing address is the same as delivery”."
    assert links == {
        "billing_name": f"Billing name: {expected}",
        "billing_address": f"Billing street address: {expected}",
        "billing_city": f"Billing city: {expected}",
        "billing_postcode": f"Billing postcode: {expected}",
        "billing_country": f"Billing country: {expected}",
    }
    for anchor in links:
        assert f'id="{anchor}"' in html, anchor
    # The box stays as the customer left it.
    assert page(response).form("/checkout/").fields.get("billing_same") is None


def test_a_billing_country_must_be_a_real_one(shopper):
    response = send_details(
        shopper, untick=("billing_same",), **{**BILLING, "billing_country": "EU"}
    )
    assert response.status_code == 200
    links = summary_links(response.get_data(as_text=True))
    assert links == {"billing_country": "Billing country: Please choose a country from the list."}


def test_a_different_billing_address_is_shown_on_the_review(shopper):
    response = send_details(shopper, untick=("billing_same",), **BILLING)
    assert response.status_code == 303
    html = shopper.get("/checkout/review").get_data(as_text=True)
    assert "Bob Payer<br>2 Bank Street<br>T12 AB34 Cork<br>Germany" in html
    assert '<a href="/checkout/#billing">Change' in html
    # Back on the form, the box is still unticked and the address still there.
    form = page(shopper.get("/checkout/")).form("/checkout/")
    assert "billing_same" not in form.fields
    assert {k: form.fields[k] for k in BILLING} == BILLING


def test_a_note_may_be_500_characters_not_501(shopper):
    response = send_details(shopper, note="x" * 501)
    assert response.status_code == 200
    links = summary_links(response.get_data(as_text=True))
    assert links == {
        "note": "Note to the shop (optional): Please shorten the note to 500 characters at most"
        " (it has 501)."
    }
    assert send_details(shopper, note="x" * 500).status_code == 303


def test_a_notes_line_breaks_count_once(shopper):
    # Browsers send a line break as CRLF: 250 lines of one character and a break are 499.
    response = send_details(shopper, note="\r\n".join(["x"] * 250))
    assert response.status_code == 303


NOTE = 'Please ring twice.\n<script>alert("hi")</script> & <b>leave it</b> by the door'
ESCAPED = "&lt;script&gt;alert(&#34;hi&#34;)&lt;/script&gt; &amp; &lt;b&gt;leave it&lt;/b&gt;"


def test_phone_billing_and_note_reach_the_order_the_receipt_the_mail_and_the_admin(shop, sandbox):
    _, slug = product(shop, name="Kenya Nyeri", price=1250, stock=5)
    browser = Browser()
    add_to_cart(shop, browser, slug)
    form = browser.get(f"{shop.url}/checkout/").form("/checkout/")
    del form.fields["billing_same"]  # unticked: a billing address of its own
    page = browser.submit(
        form, gateway="rbs", phone=" +353 1 234 5678 ", note=NOTE, **CUSTOMER, **BILLING
    )
    assert "Review your order" in page, page.text
    assert "+353 1 234 5678" in page
    assert "Bob Payer<br>2 Bank Street<br>T12 AB34 Cork<br>Germany" in page
    assert ESCAPED in page and "<script>alert" not in page.text
    assert '<a href="/checkout/#note">Change' in page

    browser.submit(page.form("/checkout/place"))  # to the gateway's page
    page = pay_rbs(browser)
    assert page.url.startswith(shop.url + "/order/"), page.text
    order, _ = latest_order(shop)
    assert (order.phone, order.note) == ("+353 1 234 5678", NOTE)
    assert {
        "billing_name": order.billing_name,
        "billing_address": order.billing_address,
        "billing_city": order.billing_city,
        "billing_postcode": order.billing_postcode,
        "billing_country": order.billing_country,
    } == BILLING
    # The receipt.
    assert "Phone: +353 1 234 5678" in page
    assert "Bob Payer<br>2 Bank Street<br>T12 AB34 Cork<br>Germany" in page
    assert ESCAPED in page and "<script>alert" not in page.text

    # The confirmation mail, in both its parts.
    [mail] = mail_files(shop, f"{order.number}-order_confirmation-*.eml")
    message = message_from_bytes(mail.read_bytes(), policy=email_policy)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Phone: +353 1 234 5678" in text and NOTE in text
    assert "Bob Payer\n2 Bank Street\nT12 AB34 Cork\nGermany" in text
    assert "+353 1 234 5678" in html and "Bob Payer, 2 Bank Street" in html
    assert ESCAPED in html and "<script>alert" not in html

    # The order's page in the back office.
    make_staff(shop.app)
    back = Back(shop.app.test_client())
    back.sign_in()
    page = back.get(f"/admin/orders/{order.number}")
    assert '<a href="tel:+35312345678">+353 1 234 5678</a>' in page
    assert "Bob Payer<br>2 Bank Street<br>T12 AB34 Cork<br>DE" in page
    assert "<dt>Customer's note</dt>" in page
    assert ESCAPED in page and "<script>alert" not in page.text


def test_an_order_without_them_says_so_on_the_receipt_and_in_the_admin(shop, sandbox):
    # CUSTOMER as the journeys send it: no phone, the billing box as the form comes, no note.
    _, slug = product(shop, stock=5)
    browser = Browser()
    add_to_cart(shop, browser, slug)
    page = browser.submit(
        browser.get(f"{shop.url}/checkout/").form("/checkout/"), gateway="rbs", **CUSTOMER
    )
    assert "The same as the delivery address" in page
    browser.submit(page.form("/checkout/place"))  # to the gateway's page
    page = pay_rbs(browser)
    order, _ = latest_order(shop)
    assert (order.phone, order.billing_address, order.note) == ("", "", "")
    assert "Phone:" not in page and "Billing address" not in page and "Your note" not in page
    make_staff(shop.app)
    back = Back(shop.app.test_client())
    back.sign_in()
    page = back.get(f"/admin/orders/{order.number}")
    assert "same as delivery" in page and "not given" in page
