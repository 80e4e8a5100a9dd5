"""VAT per rate from VAT-inclusive amounts, in integer minor units."""

import pytest

from storefront.config import rates
from storefront.orders.vat import breakdown, vat_in

RATES = {"standard": 2300, "reduced": 1350, "zero": 0}


def test_vat_in_an_inclusive_amount_rounds_half_up():
    assert vat_in(12300, 2300) == 2300
    assert vat_in(100, 2300) == 19  # 18.699… rounds up
    assert vat_in(1135, 1350) == 135  # exactly 135
    assert vat_in(999, 0) == 0


def test_breakdown_groups_by_rate_and_taxes_delivery_at_standard():
    taxes = breakdown([(2000, "standard"), (1135, "reduced"), (500, "zero")], 615, RATES)
    assert [(t.tax_class, t.gross, t.vat) for t in taxes] == [
        ("standard", 2615, 489),
        ("reduced", 1135, 135),
        ("zero", 500, 0),
    ]
    assert sum(t.gross for t in taxes) == 2000 + 1135 + 500 + 615
    assert taxes[0].percent == "23 %" and taxes[1].percent == "13.5 %"
    assert taxes[0].net == 2615 - 489


def test_free_delivery_adds_no_line():
    assert [t.tax_class for t in breakdown([(1135, "reduced")], 0, RATES)] == ["reduced"]


def test_an_unknown_tax_class_is_refused():
    with pytest.raises(KeyError):
        breakdown([(100, "luxury")], 0, RATES)


def test_rates_setting_parses_and_needs_a_standard_rate():
    assert rates("standard:2300, reduced:1350,zero:0") == RATES
    with pytest.raises(ValueError):
        rates("reduced:1350")
    with pytest.raises(ValueError):
        rates("standard")


def test_delivery_is_free_over_the_threshold_and_only_where_served():
    from storefront.checkout.models import DeliveryMethod

    post = DeliveryMethod(name="Post", price=495, free_over=5000, countries="IE, gb")
    assert post.price_for(4999) == 495 and post.price_for(5000) == 0
    assert post.serves("GB") and post.serves("ie") and not post.serves("FR")
    assert DeliveryMethod(name="Courier", price=995, free_over=None).price_for(10**6) == 995


def test_flask_seed_loads_the_delivery_methods_once(app):
    from storefront.checkout.models import DeliveryMethod
    from storefront.extensions import db

    runner = app.test_cli_runner()
    assert "seeded the delivery methods" in runner.invoke(args=["seed"]).output
    assert "delivery" not in runner.invoke(args=["seed"]).output
    with app.app_context():
        methods = db.session.execute(db.select(DeliveryMethod)).scalars().all()
        assert len(methods) == 3 and all(m.active for m in methods)
        assert any(m.serves("IE") and m.free_over for m in methods)


def test_only_active_methods_serving_the_country_are_offered(app):
    from storefront.checkout import delivery
    from storefront.checkout.seed import seed_delivery_methods

    with app.app_context():
        seed_delivery_methods()
        names = [m.name for m in delivery.available("ie")]
        assert names == ["Standard post", "Express courier", "EU post"]
        assert [m.name for m in delivery.available("FR")] == ["EU post"]
        assert delivery.available("US") == []  # not served: the step says so
        courier = delivery.available("IE")[1]
        courier.active = False
        assert delivery.find(courier.id, "IE") is None


def test_placing_an_order_freezes_delivery_and_vat_per_rate(app):
    from storefront.orders import service
    from tests.factories import make_product

    with app.app_context():
        coffee = make_product(price=2000)
        book = make_product(name="Book", price=1135)
        book.tax_class = "reduced"
        details = service.CustomerDetails("a@b.ie", "A", "1 St", "Dublin", "D01", "IE")
        order, _ = service.place_order(
            [(coffee, 1), (book, 1)], details, "k" * 20, delivery=("Standard post", 615)
        )
        assert order.total == 2000 + 1135 + 615 and order.delivery_name == "Standard post"
        assert [(t.tax_class, t.gross, t.vat) for t in order.taxes] == [
            ("standard", 2615, 489),
            ("reduced", 1135, 135),
        ]
