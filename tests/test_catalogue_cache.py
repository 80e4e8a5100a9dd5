"""The catalogue page cache is never wrong: a change is on the next view; 304 only unchanged."""

import pytest

from storefront.catalogue.models import Product
from storefront.catalogue.seed import seed_demo_catalogue
from storefront.extensions import db

URL = "/p/ethiopia-yirgacheffe-250-g"


@pytest.fixture
def seeded(app):
    with app.app_context():
        seed_demo_catalogue()
    return app


def test_price_change_is_on_the_next_view_and_304_only_when_unchanged(app, client, seeded):
    first = client.get(URL)
    assert "€12.50" in first.get_data(as_text=True)
    etag = first.headers["ETag"]
    assert client.get(URL, headers={"If-None-Match": etag}).status_code == 304
    with app.app_context():
        product = db.session.execute(db.select(Product).where(Product.slug == URL[3:])).scalar_one()
        product.price = 1399
        db.session.commit()
    again = client.get(URL, headers={"If-None-Match": etag})
    assert again.status_code == 200
    assert "€13.99" in again.get_data(as_text=True)


def test_a_delivery_method_changed_moves_the_catalogue_version(app, seeded):
    from storefront.catalogue.cache import current_version
    from storefront.checkout.models import DeliveryMethod

    with app.app_context():
        before = current_version()
        db.session.add(DeliveryMethod(name="Courier", price=900, free_over=None, countries="IE"))
        db.session.commit()
        assert current_version() == before + 1


def test_a_cached_page_that_reads_a_visitors_own_value_fails_instead_of_sharing_it(app, seeded):
    from jinja2 import ChoiceLoader, DictLoader, UndefinedError

    from storefront.catalogue import views

    app.jinja_env.loader = ChoiceLoader(
        [DictLoader({"shared.html": "<p>{{ cart_count }} items</p>"}), app.jinja_env.loader]
    )
    with app.test_request_context("/"):
        with pytest.raises(UndefinedError, match="cart_count is the visitor's own"):
            views._cached_page("shared.html", dict)
        # The same template outside the page cache is rendered as any page is.
        assert "0 items" in views.render_template("shared.html")


def test_an_entry_missing_is_made_once_while_other_requests_wait_for_it():
    import threading

    from storefront.catalogue.cache import FragmentCache

    cache = FragmentCache()
    started, release = threading.Event(), threading.Event()
    made: list[str] = []

    def slow_make():
        made.append("page")
        started.set()
        assert release.wait(10)
        return "<p>the page</p>"

    answers: list[str] = []
    first = threading.Thread(target=lambda: answers.append(cache.get_or_make(("k",), slow_make)))
    first.start()
    assert started.wait(10)
    second = threading.Thread(
        target=lambda: answers.append(cache.get_or_make(("k",), lambda: made.append("again")))
    )
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the first one's page, not making its own
    release.set()
    first.join(10)
    second.join(10)
    assert answers == ["<p>the page</p>", "<p>the page</p>"]
    assert made == ["page"]


def test_a_request_waiting_for_an_entry_makes_it_itself_when_the_maker_fails():
    import threading

    from storefront.catalogue.cache import FragmentCache

    cache = FragmentCache()
    started, release = threading.Event(), threading.Event()

    def failing_make():
        started.set()
        assert release.wait(10)
        raise RuntimeError("the database went away")

    errors: list[Exception] = []

    def first_request():
        try:
            cache.get_or_make(("k",), failing_make)
        except RuntimeError as exc:
            errors.append(exc)

    first = threading.Thread(target=first_request)
    first.start()
    assert started.wait(10)
    answers: list[str] = []
    second = threading.Thread(
        target=lambda: answers.append(cache.get_or_make(("k",), lambda: "<p>made here</p>"))
    )
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert [str(e) for e in errors] == ["the database went away"]
    assert answers == ["<p>made here</p>"]
    assert cache.get(("k",)) == "<p>made here</p>"


# Stock the pages show alike -------------------------------------------------------------------
# Around every value at which a page changes: none left, "only N left", the quantity fields' max.
STOCKS = [0, 1, 2, 4, 5, 6, 7, 50, 98, 99, 100, 101, 1000]


def _pages_at(app, client, stock: int) -> str:
    """The product, category and cart pages (with the product in the cart) at ``stock``,
    rendered afresh, CSRF tokens aside."""
    import re

    from sqlalchemy import update

    from storefront.catalogue.cache import fragments_of, rows_of

    with app.app_context():
        db.session.execute(update(Product).where(Product.slug == URL[3:]).values(stock=stock))
        db.session.commit()
    fragments_of(app).clear()
    rows_of(app).clear()
    pages = [client.get(path).get_data(as_text=True) for path in (URL, "/c/coffee", "/cart/")]
    return re.sub(r'name="csrf_token" type="hidden" value="[^"]*"', "", "\n".join(pages))


def test_two_stocks_give_the_same_pages_exactly_when_shown_says_they_look_alike(
    app, client, seeded
):
    from storefront.catalogue.stock import shown

    with app.app_context():
        product = db.session.execute(db.select(Product).where(Product.slug == URL[3:])).scalar_one()
        with client.session_transaction() as session:
            session["cart"] = {str(product.id): 1}
            session["cart_prices"] = {str(product.id): product.price}
    rendered = {stock: _pages_at(app, client, stock) for stock in STOCKS}
    for a in STOCKS:
        for b in STOCKS:
            alike = rendered[a] == rendered[b]
            assert alike == (shown(a) == shown(b)), (a, b)


def test_a_change_of_stock_moves_the_version_only_when_the_pages_show_it(app, seeded):
    from sqlalchemy import update

    from storefront.catalogue import stock
    from storefront.catalogue.cache import current_version
    from storefront.catalogue.models import StockReason

    def version_after(change) -> bool:
        """Whether ``change`` (then committed) moved the catalogue's version."""
        with app.test_request_context("/"):
            before = current_version()
        with app.test_request_context("/"):
            product = db.session.execute(
                db.select(Product).where(Product.slug == URL[3:])
            ).scalar_one()
            change(product)
            db.session.commit()
            db.session.remove()
        with app.test_request_context("/"):
            return current_version() != before

    with app.app_context():
        db.session.execute(update(Product).where(Product.slug == URL[3:]).values(stock=1000))
        db.session.commit()
    # 1,000 -> 990 -> 100 -> 99: "in stock", at most 99 in the cart, all alike.
    assert not version_after(lambda p: stock.take(p.id, 10))
    assert not version_after(lambda p: stock.adjust(p, -890, StockReason.MANUAL, "count", "ann"))
    assert not version_after(lambda p: stock.take(p.id, 1))
    # 99 -> 98: the quantity field's max is 98 now.
    assert version_after(lambda p: stock.take(p.id, 1))
    # 98 -> 100: back to 99 at most.
    assert version_after(lambda p: stock.give_back(p.id, 2))
    # 100 -> 7 -> 5: "only 5 left"; 5 -> 0: "out of stock".
    assert version_after(lambda p: stock.adjust(p, -93, StockReason.MANUAL, "count", "ann"))
    assert version_after(lambda p: stock.take(p.id, 2))
    assert version_after(lambda p: stock.take(p.id, 5))
    # None left to take: nothing changed, nothing moved.
    assert not version_after(lambda p: stock.take(p.id, 1))
