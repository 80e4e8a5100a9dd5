"""On each gateway, the receipt and the confirmation mail show the lines, the delivery, the VAT
per rate, the total and the seller, and they add up to exactly what the gateway was asked for.
"""

from __future__ import annotations

import email
from email import policy

import pytest

from storefront.checkout.models import DeliveryMethod
from tests.browser import Browser
from tests.journeys import (
    add_to_cart,
    checkout,
    coffee_and_book,
    latest_order,
    mail_files,
    pay_altapay,
    pay_interpay,
    pay_rbs,
    words,
)

PAY = {"rbs": pay_rbs, "altapay": pay_altapay, "interpay": pay_interpay}
# Where the sandbox keeps each gateway's registration, and the amount it was asked for.
ASKED = {
    "rbs": ("rbs_order", "amount"),
    "altapay": ("altapay_request", "amount_cents"),
    "interpay": ("interpay_session", "amount"),
}


def stocked(shop) -> tuple[str, str]:
    """A coffee at 20.00 (standard rate), a book at 11.35 (reduced), and a courier at 9.95."""
    with shop.db() as session:
        session.add(DeliveryMethod(name="Courier", price=995, free_over=None, countries="IE"))
        session.commit()
    return coffee_and_book(shop)


def confirmation(shop, number: str) -> email.message.EmailMessage:
    [path] = mail_files(shop, f"{number}-order_confirmation-*.eml")
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


@pytest.mark.parametrize("gateway", ["rbs", "altapay", "interpay"])
def test_receipt_and_mail_show_everything_and_add_up_to_the_amount_asked(
    make_shop, sandbox, gateway
):
    shop = make_shop(GATEWAYS=gateway)
    coffee, book = stocked(shop)
    browser = Browser()
    add_to_cart(shop, browser, coffee)
    add_to_cart(shop, browser, book)
    checkout(shop, browser, gateway)
    receipt = words(PAY[gateway](browser).text)

    order, _ = latest_order(shop)
    assert order.total == 2000 + 1135 + 995
    kind, field = ASKED[gateway]
    [asked] = sandbox.state()[kind]
    assert asked[field] == order.total  # the gateway was asked for exactly the order's total

    # 23 % of the coffee and the courier (29.95 → 5.60); 13.5 % of the book (11.35 → 1.35).
    for text in ("Coffee", "Book", "Courier €9.95", "Total €41.30"):
        assert text in receipt, (text, receipt)
    assert "of which VAT 23 % €5.60" in receipt and "of which VAT 13.5 % €1.35" in receipt
    assert "Storefront Ltd" in receipt and "IE1234567T" in receipt

    mail = confirmation(shop, order.number)
    for part in ("plain", "html"):
        body = words(mail.get_body(preferencelist=(part,)).get_content())
        for text in ("Coffee", "Book", "Courier", "€9.95", "€41.30", "€5.60", "€1.35"):
            assert text in body, (part, text, body)
        assert "Storefront Ltd" in body and "IE1234567T" in body, (part, body)
        assert order.number in body
