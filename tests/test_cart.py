"""The cart: adding, changing and removing lines through the real forms, CSRF tokens included."""

from __future__ import annotations

import pytest
from flask import session
from sqlalchemy import event

from storefront.cart import service
from storefront.catalogue.models import Product
from storefront.catalogue.seed import seed_demo_catalogue
from storefront.extensions import db
from tests.browser import Page

KENYA = "kenya-aa-nyeri-250-g"  # €14.90, 3 in stock
ETHIOPIA = "ethiopia-yirgacheffe-250-g"  # €12.50, 40 in stock
DARJEELING = "darjeeling-first-flush-100-g"  # 1 in stock
DECAF = "peru-decaf-swiss-water-250-g"  # out of stock


@pytest.fixture
def shop(app):
    with app.app_context():
        seed_demo_catalogue()
    return app


page = Page.from_test_client


def product_id(app, slug: str) -> int:
    with app.app_context():
        return db.session.execute(db.select(Product.id).where(Product.slug == slug)).scalar_one()


def change(app, slug: str, **values) -> None:
    with app.app_context():
        db.session.execute(db.update(Product).where(Product.slug == slug).values(**values))
        db.session.commit()


def stored_cart(client) -> dict:
    with client.session_transaction() as stored:
        return dict(stored.get("cart") or {})


def add(client, slug: str, quantity="1", **extra):
    """Fill in and send the add-to-cart form of a product page."""
    form = page(client.get(f"/p/{slug}")).form("/cart/add")
    data = {**form.fields, "quantity": quantity, **extra}
    return client.post(form.action, data={k: v for k, v in data.items() if v is not None})


def cart_form(client, action: str, slug_id: int):
    """The cart page's form for ``action`` on the line of product ``slug_id``."""
    for form in page(client.get("/cart/")).forms:
        if form.action == action and form.fields.get("product_id") == str(slug_id):
            return form
    raise AssertionError(f"no {action} form for product {slug_id}")


def flashes(client) -> str:
    return client.get("/cart/").get_data(as_text=True)


# Adding --------------------------------------------------------------------------------------


def test_adding_a_product_puts_it_in_the_cart_and_redirects_to_it(client, shop):
    response = add(client, ETHIOPIA, "2")
    assert response.status_code == 303
    assert response.headers["Location"] == "/cart/"
    text = client.get("/cart/").get_data(as_text=True)
    assert "Added 2 × Ethiopia Yirgacheffe, 250 g to your cart." in text
    assert "€25.00" in text
    assert 'Cart <span class="cart-count">2</span>' in text


def test_adding_the_same_product_again_adds_to_its_line(client, shop):
    add(client, ETHIOPIA, "2")
    add(client, ETHIOPIA, "3")
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 5}


def test_session_holds_only_product_ids_and_quantities(client, shop):
    add(client, ETHIOPIA, "2")
    add(client, KENYA, "1")
    client.get("/cart/")
    with client.session_transaction() as stored:
        cart = stored["cart"]
        prices = stored["cart_prices"]
    assert cart == {str(product_id(shop, ETHIOPIA)): 2, str(product_id(shop, KENYA)): 1}
    assert prices == {str(product_id(shop, ETHIOPIA)): 1250, str(product_id(shop, KENYA)): 1490}


@pytest.mark.parametrize("quantity", ["0", "-1", "100", "1000000000", "x", "1.5", "", " ", None])
def test_invalid_quantity_is_refused_and_the_cart_is_unchanged(client, shop, quantity):
    add(client, ETHIOPIA, "1")
    response = add(client, KENYA, quantity)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/p/{KENYA}"
    assert "Choose a quantity from 1 to 99." in client.get(f"/p/{KENYA}").get_data(as_text=True)
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 1}


@pytest.mark.parametrize("bad_id", ["999999", "0", "-1", "x", "", "99999999999999999999", None])
def test_unknown_product_is_a_400_and_the_cart_is_unchanged(client, shop, bad_id):
    add(client, ETHIOPIA, "1")
    response = add(client, KENYA, "1", product_id=bad_id)
    assert response.status_code == 400
    assert "not in our catalogue" in response.get_data(as_text=True)
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 1}


def test_withdrawn_product_cannot_be_added(client, shop):
    form = page(client.get(f"/p/{KENYA}")).form("/cart/add")
    change(shop, KENYA, active=False)
    response = client.post(form.action, data=form.fields)
    assert response.status_code == 400
    assert stored_cart(client) == {}


def test_post_without_csrf_token_is_refused(client, shop):
    response = client.post("/cart/add", data={"product_id": product_id(shop, KENYA), "quantity": 1})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert stored_cart(client) == {}


def test_a_price_slipped_into_the_form_is_ignored(client, shop):
    add(client, ETHIOPIA, "2", price="1", unit_price="0.01", total="1")
    text = client.get("/cart/").get_data(as_text=True)
    assert "€25.00" in text
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 2}


def test_adding_more_than_in_stock_adds_what_is_left_and_says_so(client, shop):
    response = add(client, KENYA, "5")
    assert response.status_code == 303
    assert "Only 3 of Kenya AA Nyeri, 250 g left: your cart now has 3." in flashes(client)
    assert stored_cart(client) == {str(product_id(shop, KENYA)): 3}


def test_adding_when_the_cart_already_holds_all_the_stock_says_so(client, shop):
    add(client, DARJEELING, "1")
    form = page(client.get(f"/p/{DARJEELING}")).form("/cart/add")
    client.post(form.action, data=form.fields)
    assert "already has all" in flashes(client)
    assert stored_cart(client) == {str(product_id(shop, DARJEELING)): 1}


def test_out_of_stock_product_cannot_be_added(client, shop):
    form = page(client.get(f"/p/{KENYA}")).form("/cart/add")
    change(shop, KENYA, stock=0)
    response = client.post(form.action, data=form.fields)
    assert response.headers["Location"] == f"/p/{KENYA}"
    assert "is out of stock" in client.get(f"/p/{KENYA}").get_data(as_text=True)
    assert stored_cart(client) == {}


# Changing and removing -----------------------------------------------------------------------


def test_update_sets_the_quantity(client, shop):
    add(client, ETHIOPIA, "1")
    form = cart_form(client, "/cart/update", product_id(shop, ETHIOPIA))
    response = client.post(form.action, data={**form.fields, "quantity": "4"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/cart/"
    assert "Your cart now has 4 × Ethiopia" in flashes(client)
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 4}


def test_update_to_zero_removes_the_line(client, shop):
    add(client, ETHIOPIA, "1")
    add(client, KENYA, "1")
    form = cart_form(client, "/cart/update", product_id(shop, ETHIOPIA))
    client.post(form.action, data={**form.fields, "quantity": "0"})
    assert "Ethiopia Yirgacheffe, 250 g was removed from your cart." in flashes(client)
    assert stored_cart(client) == {str(product_id(shop, KENYA)): 1}


@pytest.mark.parametrize("quantity", ["-1", "100", "1000000000", "x", "", None])
def test_invalid_update_is_refused_and_the_cart_is_unchanged(client, shop, quantity):
    add(client, ETHIOPIA, "2")
    form = cart_form(client, "/cart/update", product_id(shop, ETHIOPIA))
    data = {**form.fields, "quantity": quantity}
    response = client.post(form.action, data={k: v for k, v in data.items() if v is not None})
    assert response.status_code == 303
    assert "Choose a quantity from 0 to 99." in flashes(client)
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 2}


def test_update_above_stock_keeps_what_is_left_and_says_so(client, shop):
    add(client, KENYA, "1")
    form = cart_form(client, "/cart/update", product_id(shop, KENYA))
    client.post(form.action, data={**form.fields, "quantity": "9"})
    assert "Only 3 of Kenya AA Nyeri, 250 g left: your cart now has 3." in flashes(client)
    assert stored_cart(client) == {str(product_id(shop, KENYA)): 3}


def test_remove_takes_the_line_out(client, shop):
    add(client, ETHIOPIA, "1")
    add(client, KENYA, "2")
    form = cart_form(client, "/cart/remove", product_id(shop, KENYA))
    response = client.post(form.action, data=form.fields)
    assert response.status_code == 303
    assert "Kenya AA Nyeri, 250 g was removed from your cart." in flashes(client)
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 1}


@pytest.mark.parametrize("bad_id", ["x", "", "-5", None])
def test_remove_with_a_junk_product_is_a_400(client, shop, bad_id):
    add(client, ETHIOPIA, "1")
    form = cart_form(client, "/cart/remove", product_id(shop, ETHIOPIA))
    data = {**form.fields, "product_id": bad_id}
    response = client.post(form.action, data={k: v for k, v in data.items() if v is not None})
    assert response.status_code == 400
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 1}


@pytest.mark.parametrize("url", ["/cart/add", "/cart/update", "/cart/remove"])
def test_cart_changes_refuse_get(client, url):
    assert client.get(url).status_code == 405


# What changed since the customer last looked -------------------------------------------------


def test_stock_that_ran_low_clamps_the_cart_and_says_so_once(client, shop):
    add(client, ETHIOPIA, "5")
    change(shop, ETHIOPIA, stock=2)
    text = client.get("/cart/").get_data(as_text=True)
    assert "Only 2 of Ethiopia Yirgacheffe, 250 g left: your cart now has 2." in text
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 2}
    assert "left: your cart now has" not in client.get("/cart/").get_data(as_text=True)


def test_price_change_is_reported_once(client, shop):
    add(client, ETHIOPIA, "2")
    change(shop, ETHIOPIA, price=1200)
    text = client.get("/cart/").get_data(as_text=True)
    assert "The price of Ethiopia Yirgacheffe, 250 g changed from €12.50 to €12.00." in text
    assert "€24.00" in text
    assert "changed from" not in client.get("/cart/").get_data(as_text=True)


@pytest.mark.parametrize("values", [{"active": False}, {"stock": 0}])
def test_product_no_longer_for_sale_leaves_the_cart_with_a_notice(client, shop, values):
    add(client, ETHIOPIA, "1")
    add(client, KENYA, "1")
    change(shop, KENYA, **values)
    text = client.get("/cart/").get_data(as_text=True)
    assert "Kenya AA Nyeri, 250 g is" in text and "removed from your cart" in text
    assert stored_cart(client) == {str(product_id(shop, ETHIOPIA)): 1}


def test_a_tampered_cart_in_the_session_is_cleaned_not_a_500(client, shop):
    kenya = str(product_id(shop, KENYA))
    with client.session_transaction() as stored:
        stored["cart"] = {"x": 1, "-1": 2, "99999999999": 1, kenya: 1, "424242": 3, "1": "9"}
        stored["cart_prices"] = "junk"
    response = client.get("/cart/")
    assert response.status_code == 200
    assert "An item in your cart is no longer available" in response.get_data(as_text=True)
    assert stored_cart(client) == {kenya: 1}


def test_the_cart_page_shows_lines_total_and_checkout(client, shop):
    add(client, ETHIOPIA, "2")
    add(client, KENYA, "1")
    response = client.get("/cart/")
    text = response.get_data(as_text=True)
    assert f'href="/p/{ETHIOPIA}"' in text
    assert 'alt=""' in text  # the thumbnail repeats the linked name
    assert "€39.90" in text  # 2 × 12.50 + 14.90
    assert page(response).link("Checkout").endswith("/checkout/")
    assert '<label for="quantity-' in text


def test_empty_cart_says_so_without_a_checkout_link(client, shop):
    text = client.get("/cart/").get_data(as_text=True)
    assert "Your cart is empty." in text
    assert "Checkout</a>" not in text


# The service as the checkout uses it -----------------------------------------------------------


def test_read_cart_loads_every_line_in_one_query(app, shop):
    ids = [product_id(shop, slug) for slug in (ETHIOPIA, KENYA, DARJEELING)]
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.test_request_context():
        session["cart"] = {str(i): 1 for i in ids}
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            cart = service.read_cart()
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    assert len(cart.lines) == 3
    assert len(statements) == 1


def test_read_cart_totals_in_minor_units(app, shop):
    with app.test_request_context():
        service.add(product_id(shop, ETHIOPIA), 2)
        service.add(product_id(shop, KENYA), 1)
        cart = service.read_cart()
    assert cart.total == 2 * 1250 + 1490
    assert cart.count == 3
    assert cart.currency == "EUR"
    assert not cart.is_empty
    assert [line.total for line in cart.lines] == [2500, 1490]


def test_quantities_never_exceed_the_maximum(app, shop):
    change(shop, ETHIOPIA, stock=500)
    ethiopia = product_id(shop, ETHIOPIA)
    with app.test_request_context():
        session["cart"] = {str(ethiopia): 150}
        cart = service.read_cart()
        assert cart.lines[0].quantity == service.MAX_QUANTITY
        assert "at most 99" in cart.notices[0]
        service.add(ethiopia, 50)
        assert service.quantity_of(ethiopia) == service.MAX_QUANTITY


def test_restore_merges_an_order_back_into_the_cart_and_take_back_takes_it_out(app, shop):
    ethiopia, kenya = product_id(shop, ETHIOPIA), product_id(shop, KENYA)
    with app.test_request_context():
        service.add(ethiopia, 1)
        service.restore([(ethiopia, 2), (kenya, 1)])
        assert session["cart"] == {str(ethiopia): 2, str(kenya): 1}
        # A second failed attempt of the same order restores the same lines: never doubled.
        service.restore([(ethiopia, 2), (kenya, 1)])
        assert session["cart"] == {str(ethiopia): 2, str(kenya): 1}
        service.add(kenya, 2)  # the customer adds more on top
        service.take_back([(ethiopia, 2), (kenya, 1)])  # the order was paid after all
        assert session["cart"] == {str(kenya): 2}
        service.clear()
        assert service.read_cart().is_empty
        assert "cart" not in session


def test_set_quantity_and_remove(app, shop):
    ethiopia = product_id(shop, ETHIOPIA)
    with app.test_request_context():
        service.set_quantity(ethiopia, 4)
        assert service.quantity_of(ethiopia) == 4
        service.set_quantity(ethiopia, 0)
        assert service.quantity_of(ethiopia) == 0
        service.add(ethiopia, 1)
        service.remove(ethiopia)
        service.remove(ethiopia)  # removing twice is fine
        assert service.read_cart().is_empty
        with pytest.raises(service.CartError):
            service.add(424242, 1)
        with pytest.raises(ValueError):
            service.add(ethiopia, 0)
