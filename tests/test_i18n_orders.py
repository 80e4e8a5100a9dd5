"""An order in the customer's language, end to end: the gateway is asked for it, its page is in
it, and the receipt and every mail are in it, even one sent later by the reconciler after the
customer switched the shop to another language. Real HTTP against the sandbox throughout."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from storefront.orders.models import OrderState, OutboxMessage
from tests.admin_steps import Back, make_staff
from tests.browser import Browser, Page
from tests.journeys import APPROVE, CUSTOMER, latest_order, product, wait_for


@pytest.fixture
def altapay_shop(make_shop):
    return make_shop(GATEWAYS="altapay")


@pytest.fixture
def interpay_shop(make_shop):
    # The sandbox's InterPay terminal charges CAD, like a real one: so does this shop.
    return make_shop(GATEWAYS="interpay", CURRENCY="CAD")


def german_browser() -> Browser:
    browser = Browser()
    browser.http.headers["Accept-Language"] = "de-DE,de;q=0.9,en;q=0.5"
    return browser


def plain(text: str) -> str:
    """Babel writes the space between amount and symbol as a no-break space: read it as one."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


def to_gateway_in_german(shop, browser: Browser, slug: str, gateway: str) -> Page:
    """Product page → cart → details → review → place, every step answered in German."""
    page = browser.get(f"{shop.url}/p/{slug}")
    assert '<html lang="de">' in page.text
    browser.submit(page.form("/cart/add"), quantity=1)
    page = browser.get(f"{shop.url}/checkout/")
    page = browser.submit(page.form("/checkout/"), gateway=gateway, **CUSTOMER)
    assert "Bestellung prüfen" in page, page.text
    page = browser.submit(page.form("/checkout/place"))
    assert urlsplit(page.url).path.startswith(f"/{gateway}/"), page.url  # on the sandbox
    return page


def mails_of(shop, number: str, kind: str = "order_confirmation") -> list[email.message.Message]:
    folder = Path(shop.app.instance_path) / "mail"
    return [
        email.message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in sorted(folder.glob(f"{number}-{kind}-*.eml"))
    ]


def body_of(mail) -> str:
    return plain(mail.get_body(preferencelist=("plain",)).get_content())


def all_sent(shop) -> bool:
    with shop.db() as session:
        rows = session.execute(select(OutboxMessage)).scalars().all()
        return bool(rows) and all(m.sent_at is not None for m in rows)


def assert_german_confirmation(shop, number: str, price: str) -> None:
    assert wait_for(lambda: all_sent(shop), seconds=10.0)
    [mail] = mails_of(shop, number)
    assert "Bestellung" in mail["Subject"] and "bestätigt" in mail["Subject"]
    body = body_of(mail)
    assert "Hallo Ann Example," in body
    assert "Summe:" in body and price in body
    html = plain(mail.get_body(preferencelist=("html",)).get_content())
    assert price in html


def test_a_german_purchase_on_bpc_rbs_is_german_at_the_gateway_on_the_receipt_and_in_the_mail(
    shop, sandbox
):
    _, slug = product(shop, name="Kenya Nyeri", price=1250)
    browser = german_browser()

    page = to_gateway_in_german(shop, browser, slug, "rbs")

    [registered] = sandbox.state()["rbs_order"]
    assert registered["language"] == "de"  # register.do was asked for German
    assert '<html lang="de">' in page.text
    assert "Kartennummer" in page and "12.50 € bezahlen" not in page
    form = page.form(button="Abbrechen")  # the sandbox's page speaks German
    page = browser.submit(
        form, button="pay", pan=APPROVE, expiry="12/34", cvc="123", cardholder="Ann Example"
    )

    assert page.url.startswith(shop.url + "/order/")
    assert "Vielen Dank, Ihre Zahlung ist eingegangen" in page
    assert '<html lang="de">' in page.text and "12,50 €" in plain(page.text)
    order, _ = latest_order(shop)
    assert (order.state, order.locale) == (OrderState.PAID, "de")
    assert_german_confirmation(shop, order.number, "12,50 €")


def test_a_german_purchase_on_altapay_asks_for_german_and_its_page_is_german(altapay_shop, sandbox):
    shop = altapay_shop
    _, slug = product(shop, name="Kenya Nyeri", price=1250)
    browser = german_browser()

    page = to_gateway_in_german(shop, browser, slug, "altapay")

    [request] = sandbox.state()["altapay_request"]
    assert request["language"] == "de"  # createPaymentRequest was asked for German
    # The shop's callback_form page around the gateway's fields, both in German.
    assert "Sichere Kartenzahlung" in page
    assert "Kartennummer" in page
    form = page.form(button="Zahlung abbrechen")
    page = browser.submit(
        form,
        button="pay",
        cardno=APPROVE,
        emonth="12",
        eyear="2034",
        cvc="123",
        cardholdername="Ann Example",
    )

    # The relayed receipt: AltaPay holds the money (type=payment) until the order is shipped.
    assert "Vielen Dank, Ihre Bestellung ist bestätigt" in page, page.text
    assert "Ihre Zahlung über 12,50 € ist autorisiert" in plain(page.text)
    order, _ = latest_order(shop)
    assert (order.state, order.locale) == (OrderState.AUTHORIZED, "de")
    assert_german_confirmation(shop, order.number, "12,50 €")


def test_a_german_purchase_on_interpay_gets_its_english_page_and_a_german_receipt_and_mail(
    interpay_shop, sandbox
):
    # InterPay's LANG is E or F only (gateways.md §1.3): German is not on offer, so English.
    shop = interpay_shop
    _, slug = product(shop, name="Kenya Nyeri", price=1250)
    browser = german_browser()

    page = to_gateway_in_german(shop, browser, slug, "interpay")

    [session] = sandbox.state()["interpay_session"]
    assert session["lang"] == "E"
    assert '<html lang="en">' in page.text
    form = page.form(button="Cancel")
    page = browser.submit(
        form, button="pay", card_number=APPROVE, expiry="12/34", cvv="123", cardholder="Ann"
    )

    assert "Vielen Dank, Ihre Zahlung ist eingegangen" in page, page.text
    order, _ = latest_order(shop)
    assert (order.state, order.locale) == (OrderState.PAID, "de")
    assert_german_confirmation(shop, order.number, "12,50 CA$")


# Nothing listens there: a mail sent while it is set fails and stays queued.
NO_MAIL_SERVER = "smtp://127.0.0.1:9"


def paid_in_german_with_the_mail_still_queued(shop) -> tuple[Browser, str]:
    """A German customer pays; the mail server is down, so the confirmation waits in the
    outbox. The browser and the receipt's address."""
    _, slug = product(shop, price=1250)
    shop.app.config["MAIL_URL"] = NO_MAIL_SERVER
    browser = german_browser()
    page = to_gateway_in_german(shop, browser, slug, "rbs")
    page = browser.submit(
        page.form(button="Abbrechen"),
        button="pay",
        pan=APPROVE,
        expiry="12/34",
        cvc="123",
        cardholder="Ann Example",
    )
    assert "Vielen Dank, Ihre Zahlung ist eingegangen" in page

    def tried() -> bool:  # both: "order received" and the confirmation
        with shop.db() as session:
            queued = session.execute(select(OutboxMessage)).scalars().all()
            return len(queued) == 2 and all(m.last_error for m in queued)

    assert wait_for(tried, seconds=10.0)
    return browser, page.url


def test_a_mail_sent_later_by_the_reconciler_is_in_the_orders_language(shop, sandbox):
    browser, receipt = paid_in_german_with_the_mail_still_queued(shop)
    order, _ = latest_order(shop)
    assert mails_of(shop, order.number) == []

    # The customer switches the shop to English; her receipt follows her choice...
    page = browser.get(f"{shop.url}/language/en?next={urlsplit(receipt).path}")
    assert "Thank you, your payment was received" in page
    # ...while a browser that never chose sees the order's language, as its mails are.
    stranger = Browser()
    stranger.http.headers["Accept-Language"] = "en"
    assert "Vielen Dank, Ihre Zahlung ist eingegangen" in stranger.get(receipt)

    # The mail server is back; the reconciler, outside any request, sends what is queued.
    shop.app.config["MAIL_URL"] = ""
    with shop.app.app_context():
        from storefront.extensions import db
        from storefront.payments.reconciler import reconcile

        reconcile()  # sends what is queued: "order received" and the confirmation
        db.session.remove()

    assert_german_confirmation(shop, order.number, "12,50 €")


def test_a_drain_in_another_customers_request_still_writes_in_the_orders_language(shop, sandbox):
    from storefront.extensions import db
    from storefront.orders.mail import drain

    paid_in_german_with_the_mail_still_queued(shop)
    order, _ = latest_order(shop)
    shop.app.config["MAIL_URL"] = ""  # the mail server is back
    # A Russian customer's page happens to drain the outbox.
    with shop.app.test_request_context("/", headers={"Accept-Language": "ru"}):
        drain()  # (a drain the payment's own requests started may send one of them first)
        db.session.remove()
    assert_german_confirmation(shop, order.number, "12,50 €")


def test_the_admin_shows_each_orders_language(shop, sandbox):
    _, slug = product(shop, price=1250)
    to_gateway_in_german(shop, german_browser(), slug, "rbs")
    order, _ = latest_order(shop)
    make_staff(shop.app)
    back = Back(shop.app.test_client())
    back.sign_in()

    page = back.get(f"/admin/orders/{order.number}")
    assert page.status == 200, page.text
    assert "German (de)" in page
    assert '<abbr title="German (de)">de</abbr>' in back.get("/admin/orders")


def test_an_order_placed_in_english_stays_english(shop, sandbox):
    _, slug = product(shop, price=1250)
    browser = Browser()
    page = browser.get(f"{shop.url}/p/{slug}")
    browser.submit(page.form("/cart/add"), quantity=1)
    page = browser.get(f"{shop.url}/checkout/")
    page = browser.submit(page.form("/checkout/"), gateway="rbs", **CUSTOMER)
    page = browser.submit(page.form("/checkout/place"))
    [registered] = sandbox.state()["rbs_order"]
    assert registered["language"] == "en"
    assert '<html lang="en">' in page.text and "Cancel" in page
    order, _ = latest_order(shop)
    assert order.locale == "en"
