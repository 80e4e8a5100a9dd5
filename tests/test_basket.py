"""The basket sent with a payment: built from the frozen order, adding up to the amount charged
and to the order's VAT per rate, on BPC/RBS (``orderBundle``) and AltaPay (``orderLines``);
the sandbox refuses a basket that does not add up."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from decimal import Decimal

import pytest
import requests
from defusedxml.ElementTree import fromstring
from sqlalchemy import select

from storefront.gateways.altapay import AltaPayGateway
from storefront.gateways.base import Journal, Line, PaymentRequest
from storefront.gateways.rbs import RbsGateway
from storefront.orders import basket, vat
from storefront.orders.models import Order, OrderLine, OrderTax
from storefront.orders.service import CustomerDetails, place_order
from storefront.payments.handoff import start_payment
from tests.browser import Browser
from tests.factories import make_product
from tests.journeys import add_to_cart, checkout, latest_order

RATES = {"standard": 2300, "reduced": 1350, "zero": 0}
DETAILS = CustomerDetails("ann@example.com", "Ann Example", "1 Main St", "Dublin", "D01", "IE")
RBS_CREDENTIALS = {"userName": "sandbox-merchant", "password": "sandbox-password"}
ALTAPAY_USER = ("sandbox-api", "sandbox-password")
RETURN_URL = "https://shop.example/pay/rbs/return/tok"


def frozen_order(lines, delivery=("", 0)) -> Order:
    """An order as ``place_order`` freezes it, of ``(name, quantity, unit price, tax class)``."""
    return Order(
        currency="EUR",
        total=sum(q * p for _, q, p, _ in lines) + delivery[1],
        delivery_name=delivery[0],
        delivery_price=delivery[1],
        lines=[
            OrderLine(product_id=n, name=name, quantity=q, unit_price=p, tax_class=c)
            for n, (name, q, p, c) in enumerate(lines, start=1)
        ],
        taxes=[
            OrderTax(tax_class=t.tax_class, rate=t.rate, gross=t.gross, vat=t.vat)
            for t in vat.breakdown([(q * p, c) for _, q, p, c in lines], delivery[1], RATES)
        ],
    )


def assert_adds_up(order: Order, built: basket.Basket) -> None:
    assert built.total == order.total
    gross: dict[str, int] = defaultdict(int)
    for line in built.lines:
        gross[line.tax_class] += line.total
    shared = {c: v for c, v in built.vat_by_class().items() if gross[c]}  # a free delivery: none
    assert shared == {t.tax_class: t.vat for t in order.taxes}
    for line in built.lines:  # each line's VAT is within one cent of its exact share
        exact = Decimal(line.total) * line.rate / (10000 + line.rate)
        assert abs(line.vat - exact) < 1 + Decimal("0.5")


# Building the basket ---------------------------------------------------------------------------
def test_awkward_prices_share_each_rates_vat_to_the_cent(app):
    with app.app_context():
        order = frozen_order([("Pen", 3, 99, "standard"), ("Sticker", 1, 1, "reduced")])
        built = basket.of(order, RATES)
    assert [(x.name, x.quantity, x.unit_price, x.total, x.rate, x.vat) for x in built.lines] == [
        ("Pen", 3, 99, 297, 2300, 56),
        ("Sticker", 1, 1, 1, 1350, 0),
    ]
    assert_adds_up(order, built)


def test_vat_rounded_per_rate_is_shared_by_largest_remainder(app):
    # Each 0.50 at 23 % carries 0.0935 of VAT: 0.09 rounded alone, three of them 0.27; but the
    # rate's VAT, rounded once, is 0.28. The extra cent goes to one line, the first on a tie.
    with app.app_context():
        order = frozen_order([(f"Card {n}", 1, 50, "standard") for n in (1, 2, 3)])
        built = basket.of(order, RATES)
    assert [line.vat for line in built.lines] == [10, 9, 9]
    assert_adds_up(order, built)


def test_a_delivery_is_a_line_at_the_standard_rate(app):
    with app.app_context():
        order = frozen_order(
            [("Pen", 3, 99, "standard"), ("Sticker", 1, 1, "reduced")], delivery=("Courier", 500)
        )
        built = basket.of(order, RATES)
    *_, delivery = built.lines
    assert (delivery.name, delivery.quantity, delivery.total, delivery.code) == (
        "Courier",
        1,
        500,
        "delivery",
    )
    assert (delivery.kind, delivery.tax_class, delivery.rate) == ("delivery", "standard", 2300)
    assert_adds_up(order, built)


def test_no_delivery_no_line_and_a_free_named_one_is_a_line_of_nothing(app):
    with app.app_context():
        plain = basket.of(frozen_order([("Book", 1, 1135, "reduced")]), RATES)
        free = basket.of(frozen_order([("Book", 1, 1135, "reduced")], ("Collect", 0)), RATES)
    assert [line.kind for line in plain.lines] == ["item"]
    assert [(x.kind, x.name, x.total, x.vat) for x in free.lines][-1] == (
        "delivery",
        "Collect",
        0,
        0,
    )
    assert free.total == plain.total == 1135


def test_random_baskets_always_add_up(app):
    shuffle = random.Random(12)
    with app.app_context():
        for _ in range(300):
            lines = [
                (
                    f"P{n}",
                    shuffle.randint(1, 7),
                    shuffle.randint(1, 4999),
                    shuffle.choice(list(RATES)),
                )
                for n in range(shuffle.randint(1, 6))
            ]
            delivery = shuffle.choice([("", 0), ("Post", shuffle.randint(1, 999)), ("Free", 0)])
            order = frozen_order(lines, delivery)
            assert_adds_up(order, basket.of(order, RATES))


def test_share_gives_out_exactly_the_total():
    assert basket.share(1, [1, 1, 1]) == [1, 0, 0]
    assert basket.share(2, [1, 3]) == [1, 1]  # 0.5 and 1.5: on a tie, the earlier line
    assert basket.share(7, [0, 0]) == [0, 0]
    assert sum(basket.share(149, [297, 500])) == 149


# The adapters at their edge ----------------------------------------------------------------
def payment_request(reference: str, lines: tuple[Line, ...]) -> PaymentRequest:
    return PaymentRequest(
        reference=reference,
        order_number=reference.split("_")[0].split("-")[0],
        amount=sum(line.amount for line in lines),
        currency="EUR",
        description="Order",
        email="ann@example.com",
        customer_name="Ann Example",
        country="IE",
        language="en",
        lines=lines,
        return_url=RETURN_URL,
        fail_url=RETURN_URL,
    )


AWKWARD = (
    Line("Pen", 3, 99, vat_rate=2300, vat=56, code="7"),
    Line("Sticker", 1, 1, vat_rate=1350, vat=0, code="8"),
    Line("Gift wrap", 1, 250, vat_rate=0, vat=0, code="9"),
    Line("Courier", 1, 500, vat_rate=2300, vat=93, code="delivery", shipping=True),
)


def rbs_adapter(sandbox, **values) -> RbsGateway:
    return RbsGateway(
        url=f"{sandbox.url}/rbs/payment/rest/",
        username="sandbox-merchant",
        password="sandbox-password",
        callback_key="",
        two_phase=False,
        connect_timeout=2,
        read_timeout=5,
        **values,
    )


def altapay_adapter(sandbox, **values) -> AltaPayGateway:
    return AltaPayGateway(
        url=f"{sandbox.url}/altapay/merchant/API/",
        username="sandbox-api",
        password="sandbox-password",
        terminal="Storefront Sandbox Terminal",
        secret="",
        capture=False,
        connect_timeout=2,
        read_timeout=5,
        **values,
    )


def rbs_registration(sandbox, number: str) -> dict:
    return next(o for o in sandbox.state()["rbs_order"] if o["orderNumber"] == number)


def altapay_request(sandbox, reference: str) -> dict:
    return next(r for r in sandbox.state()["altapay_request"] if r["shop_orderid"] == reference)


def test_rbs_sends_tax_types_where_the_rate_has_a_code_and_the_vat_everywhere(sandbox):
    adapter = rbs_adapter(sandbox, tax_types={0: 1, 2000: 6})
    adapter.start(payment_request("20000001_1", AWKWARD), Journal())

    sent = rbs_registration(sandbox, "20000001_1")
    items = sent["orderBundle"]["cartItems"]["items"]
    assert [item["positionId"] for item in items] == [1, 2, 3, 4]
    assert items[0] == {
        "positionId": 1,
        "name": "Pen",
        "quantity": {"value": 3, "measure": "pcs"},
        "itemPrice": 99,
        "itemAmount": 297,
        "itemCode": "7",
        "tax": {"taxSum": 56},  # 23 % has no code: the VAT, and no taxType that would misstate it
    }
    assert items[2]["tax"] == {"taxType": 1, "taxSum": 0}  # zero-rated: "VAT 0 %"
    assert (items[3]["name"], items[3]["itemCode"], items[3]["itemAmount"]) == (
        "Courier",
        "delivery",
        500,
    )
    assert sum(line["itemAmount"] for line in sent["basket"]) == sent["amount"] == 1048


def test_rbs_basket_can_be_turned_off(sandbox):
    rbs_adapter(sandbox, basket=False).start(payment_request("20000002_1", AWKWARD), Journal())
    sent = rbs_registration(sandbox, "20000002_1")
    assert sent["orderBundle"] is None and sent["basket"] is None


def test_altapay_lines_are_net_unit_prices_with_the_lines_vat(sandbox):
    adapter = altapay_adapter(sandbox)
    adapter.start(payment_request("20000003-1", AWKWARD), Journal())

    sent = altapay_request(sandbox, "20000003-1")
    rows = [
        (r["description"], r["quantity"], r["unitPrice"], r.get("taxAmount"), r.get("taxPercent"))
        for r in sent["order_lines"]
    ]
    # 3 × 0.99 at 23 % is 2.41 without VAT: no whole cent per unit, so 2 × 0.80 and 1 × 0.81.
    assert rows == [
        ("Pen", "2", "0.80", "0.38", "23"),
        ("Pen", "1", "0.81", "0.18", "23"),
        ("Sticker", "1", "0.01", "0.00", "13.5"),
        ("Gift wrap", "1", "2.50", "0.00", "0"),
        ("Courier", "1", "4.07", "0.93", "23"),
    ]
    assert [r["goodsType"] for r in sent["order_lines"]] == ["item"] * 4 + ["shipment"]
    assert sum(line["amount_cents"] for line in sent["basket"]) == sent["amount_cents"] == 1048


def test_altapay_basket_can_be_turned_off(sandbox):
    altapay_adapter(sandbox, basket=False).start(payment_request("20000004-1", AWKWARD), Journal())
    sent = altapay_request(sandbox, "20000004-1")
    assert sent["order_lines"] == [] and sent["basket"] is None


# Through the shop ------------------------------------------------------------------------------
def two_tax_classes(shop) -> list[str]:
    """A standard-rate coffee at an awkward price and a reduced-rate book; their slugs."""
    with shop.db() as session:
        coffee = make_product("Coffee", price=1249)
        book = make_product("Book", price=1135)
        book.tax_class = "reduced"
        session.commit()
        return [coffee.slug, book.slug]


def vat_by_rate(order: Order) -> dict[int, int]:
    return {tax.rate: tax.vat for tax in order.taxes}


def placed_through_the_pages(shop, gateway: str):
    coffee, book = two_tax_classes(shop)
    browser = Browser()
    add_to_cart(shop, browser, coffee, 3)
    add_to_cart(shop, browser, book, 1)
    page = checkout(shop, browser, gateway)
    order, _ = latest_order(shop)
    with shop.db() as session:
        stored = session.get(Order, order.id)
        taxes, lines = vat_by_rate(stored), [(x.name, x.tax_class) for x in stored.lines]
        delivery = (stored.delivery_name, stored.delivery_price)
    return page, order, taxes, lines, delivery


def test_rbs_is_sent_a_basket_that_adds_up_to_the_amount_and_the_vat(shop, sandbox):
    page, order, taxes, lines, delivery = placed_through_the_pages(shop, "rbs")

    [sent] = sandbox.state()["rbs_order"]
    assert sent["amount"] == order.total
    received = sent["basket"]
    assert sum(line["itemAmount"] for line in received) == order.total
    assert sorted((x["name"], x["quantity"]) for x in received[:2]) == [("Book", 1), ("Coffee", 3)]
    assert len(received) == 2 + (1 if delivery != ("", 0) else 0)
    rate_of = {"standard": 2300, "reduced": 1350}
    per_rate: dict[int, int] = defaultdict(int)
    for line, (_, tax_class) in zip(received, [*lines, ("", "standard")], strict=False):
        per_rate[rate_of[tax_class]] += line["taxSum"]
    assert dict(per_rate) == taxes
    # The hosted page lists what is paid for.
    assert "Your order" in page and "Coffee" in page and "Book" in page


def test_altapay_is_sent_a_basket_that_adds_up_to_the_amount_and_the_vat(make_shop, sandbox):
    shop = make_shop(GATEWAYS="altapay")
    page, order, taxes, _, _ = placed_through_the_pages(shop, "altapay")

    [sent] = sandbox.state()["altapay_request"]
    assert sent["amount_cents"] == order.total
    assert sum(line["amount_cents"] for line in sent["basket"]) == order.total
    per_rate: dict[int, int] = defaultdict(int)
    for line in sent["basket"]:
        rate = int(Decimal(line["taxPercent"]) * 100)
        per_rate[rate] += int(Decimal(line["taxAmount"]) * 100)
    assert dict(per_rate) == taxes
    assert {line["description"] for line in sent["basket"]} >= {"Coffee", "Book"}
    assert "Your order" in page and "Coffee" in page and "Book" in page


@pytest.mark.parametrize("gateway", ["rbs", "altapay"])
def test_a_delivery_is_sent_as_a_line_of_the_basket(make_shop, sandbox, gateway):
    shop = make_shop(GATEWAYS="rbs,altapay")
    with shop.app.test_request_context():
        coffee = make_product("Coffee", price=1249)
        book = make_product("Book", price=1135)
        book.tax_class = "reduced"
        order, _ = place_order([(coffee, 3), (book, 1)], DETAILS, "k" * 24, ("Courier", 500))
        attempt = start_payment(order, gateway)
        total, taxes = order.total, vat_by_rate(order)
    assert total == 3 * 1249 + 1135 + 500

    if gateway == "rbs":
        received = rbs_registration(sandbox, attempt.reference)["basket"]
        assert [x["name"] for x in received] == ["Coffee", "Book", "Courier"]
        assert sum(x["itemAmount"] for x in received) == total
        assert received[0]["taxSum"] + received[2]["taxSum"] == taxes[2300]
        assert received[1]["taxSum"] == taxes[1350]
    else:
        received = altapay_request(sandbox, attempt.reference)["basket"]
        assert received[-1]["description"] == "Courier"
        assert received[-1]["goodsType"] == "shipment"
        assert sum(x["amount_cents"] for x in received) == total
        standard = sum(Decimal(x["taxAmount"]) for x in received if x["taxPercent"] == "23")
        assert int(standard * 100) == taxes[2300]


def test_an_order_placed_before_line_tax_classes_still_adds_up(app):
    # The stored VAT row of a class that no longer matches its lines is not trusted: that
    # class's VAT is worked out again, so the basket still adds up to the total.
    with app.app_context():
        order = frozen_order([("Book", 1, 1135, "reduced")])
        order.taxes = []
        built = basket.of(order, RATES)
    assert built.total == 1135 and built.vat_by_class() == {"reduced": 135}


# The sandbox refuses a basket that does not add up ---------------------------------------------
def register(sandbox, **fields) -> dict:
    values = {
        **RBS_CREDENTIALS,
        "orderNumber": "30000001_1",
        "amount": "3000",
        "currency": "978",
        "returnUrl": RETURN_URL,
        **fields,
    }
    response = requests.post(f"{sandbox.url}/rbs/payment/rest/register.do", data=values, timeout=10)
    assert response.status_code == 200  # business errors are not HTTP errors (§2.1)
    return response.json()


def bundle(*items) -> str:
    return json.dumps(
        {
            "cartItems": {
                "items": [
                    {
                        "positionId": n,
                        "name": name,
                        "quantity": {"value": quantity, "measure": "pcs"},
                        "itemPrice": price,
                        "itemAmount": price * quantity,
                        "itemCode": str(n),
                    }
                    for n, (name, quantity, price) in enumerate(items, start=1)
                ]
            }
        }
    )


def test_sandbox_rbs_refuses_a_basket_that_does_not_add_up(sandbox):
    reply = register(sandbox, orderBundle=bundle(("Coffee", 2, 1000), ("Book", 1, 999)))

    assert reply["errorCode"] == "5"
    assert reply["errorMessage"] == "orderBundle: the items add up to 2999, not to the amount 3000"
    assert "orderId" not in reply and "formUrl" not in reply
    assert sandbox.state().get("rbs_order", []) == []
    # The refused number was not used up: the same order with a right basket registers.
    good = register(sandbox, orderBundle=bundle(("Coffee", 2, 1000), ("Book", 1, 1000)))
    assert good["orderId"] and good["formUrl"]


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ({"itemAmount": 2999}, "itemAmount is not itemPrice × quantity.value"),
        ({"positionId": None}, "positionId and name are mandatory"),
        ({"quantity": {"value": 3}}, "quantity {value, measure} is mandatory"),
        ({"tax": {"taxType": "high"}}, "tax must be {taxType, taxSum}"),
    ],
)
def test_sandbox_rbs_refuses_a_malformed_item(sandbox, item, says):
    base = json.loads(bundle(("Coffee", 3, 1000)))
    base["cartItems"]["items"][0].update(item)
    reply = register(sandbox, orderBundle=json.dumps(base))
    assert reply["errorCode"] == "5"
    assert says in reply["errorMessage"]


def create_payment_request(sandbox, **fields):
    values = {
        "terminal": "Storefront Sandbox Terminal",
        "shop_orderid": "30000002-1",
        "amount": "30.00",
        "currency": "EUR",
        **fields,
    }
    response = requests.post(
        f"{sandbox.url}/altapay/merchant/API/createPaymentRequest",
        data=values,
        auth=ALTAPAY_USER,
        timeout=10,
    )
    assert response.status_code == 200
    root = fromstring(response.content)
    return root.findtext("Header/ErrorCode"), root.findtext("Header/ErrorMessage"), root


def order_line(i: int, description: str, quantity: str, unit_price: str, tax: str) -> dict:
    return {
        f"orderLines[{i}][description]": description,
        f"orderLines[{i}][itemId]": description.lower(),
        f"orderLines[{i}][quantity]": quantity,
        f"orderLines[{i}][unitPrice]": unit_price,
        f"orderLines[{i}][taxAmount]": tax,
    }


def test_sandbox_altapay_refuses_order_lines_that_do_not_add_up(sandbox):
    # 2 × 8.13 + 3.74 tax = 20.00, and 8.85 + 1.15 tax = 10.00; short by one cent here.
    lines = {
        **order_line(0, "Coffee", "2", "8.13", "3.74"),
        **order_line(1, "Book", "1", "8.85", "1.14"),
    }
    code, message, root = create_payment_request(sandbox, **lines)

    assert code == "200"  # the Header ErrorCode of a malformed call (§3.1)
    assert message == "orderLines add up to 29.99, not to the amount 30.00"
    assert root.find("Body/PaymentRequestId") is None
    assert sandbox.state().get("altapay_request", []) == []

    lines["orderLines[1][taxAmount]"] = "1.15"
    code, message, root = create_payment_request(sandbox, **lines)
    assert code == "0", message
    [kept] = sandbox.state()["altapay_request"]
    assert [line["amount"] for line in kept["basket"]] == ["20.00", "10.00"]


def test_sandbox_altapay_refuses_an_unknown_goods_type(sandbox):
    lines = order_line(0, "Coffee", "1", "30.00", "0")
    code, message, _ = create_payment_request(sandbox, **lines, **{"orderLines[0][goodsType]": "x"})
    assert code == "200" and "unknown goodsType" in message


def test_sandbox_lists_the_basket_on_its_payment_page(sandbox):
    reply = register(sandbox, orderBundle=bundle(("Coffee", 2, 1000), ("Book", 1, 1000)))
    page = requests.get(reply["formUrl"], timeout=10).text
    assert "<caption>Your order</caption>" in page
    assert "<td>Coffee</td><td>2</td><td>20.00 EUR</td>" in page
    assert "<script" not in page.lower()


def test_orders_keep_the_tax_class_their_lines_were_sold_at(app):
    with app.app_context():
        book = make_product("Book", price=1135)
        book.tax_class = "reduced"
        order, _ = place_order([(book, 1)], DETAILS, "t" * 24)
        book.tax_class = "standard"  # reclassified after the sale
        from storefront.extensions import db

        db.session.commit()
        stored = db.session.execute(select(OrderLine).where(OrderLine.order_id == order.id))
        assert [line.tax_class for line in stored.scalars()] == ["reduced"]
        assert basket.of(order, RATES).vat_by_class() == {"reduced": 135}
