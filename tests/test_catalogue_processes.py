"""The catalogue cache on a deployment as production runs it: two gunicorn server processes, each
with a cache of its own, sharing one database (SQLite, and PostgreSQL).

- A change made through either process (staff editing a price, a customer's order taking
  stock) is on the very next page view of both: each process caches pages under the catalogue's
  version, which it reads from the database on every request.
- The parts of a cached page that belong to one customer (cart, flash messages, CSRF token) are
  that customer's own, whichever process cached the page.
- A 304 is answered only when nothing on the page changed, across the processes too.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from tests.back_office import OWNER, PASSWORD, make_account
from tests.browser import Browser
from tests.deployment import Deployment, database_url, drop_database
from tests.factories import make_app, make_category, make_product
from tests.journeys import to_gateway

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(request, sandbox_server, tmp_path_factory):
    """Two server processes of one worker each (so that a page viewed once on each is in both
    caches), and the shop's app in this process to set the catalogue up."""
    folder = tmp_path_factory.mktemp(f"cache-{request.param}")
    url, admin = database_url(request.param, folder)
    app = make_app(folder / "app", DATABASE_URL=url)
    with app.app_context():
        coffee = make_category("Coffee")
        made = make_product(name="Kenya Nyeri", price=1250, stock=8, category=coffee)
        slug, product_id, category = made.slug, made.id, f"/c/{coffee.slug}"
    make_account(app)
    running = Deployment(url, sandbox_server.url, folder, workers=1).start()
    yield SimpleNamespace(
        app=app, urls=running.urls, slug=slug, product_id=product_id, category=category
    )
    running.stop()
    with app.app_context():
        from storefront.extensions import db

        db.engine.dispose()
    if admin:
        drop_database(admin, url)


def views(browser: Browser, shop, path: str) -> list[str]:
    """``path`` as each process serves it to ``browser``."""
    pages = [browser.get(base + path) for base in shop.urls]
    assert [page.status for page in pages] == [200, 200], [page.text for page in pages]
    return [page.text for page in pages]


def test_a_price_changed_through_one_process_is_on_the_next_view_of_both(shop):
    path = f"/p/{shop.slug}"
    customer = Browser()
    for text in views(customer, shop, path) + views(customer, shop, shop.category):
        assert "€12.50" in text  # cached now by both processes, product and category pages
    change_price(shop, "13.40")
    for text in views(customer, shop, path) + views(customer, shop, shop.category):
        assert "€13.40" in text and "€12.50" not in text


def change_price(shop, price: str) -> None:
    """Staff set the product's price in the back office of the first process."""
    staff = Browser()
    page = staff.get(shop.urls[0] + "/admin/sign-in")
    page = staff.submit(page.form("/admin/sign-in"), email=OWNER, password=PASSWORD)
    page = staff.get(f"{shop.urls[0]}/admin/products/{shop.product_id}")
    page = staff.submit(page.form(f"/admin/products/{shop.product_id}"), price=price)
    assert "is saved" in page, page.text


def test_a_price_changed_through_one_process_is_in_the_cart_on_the_next_view_of_both(shop):
    # The cart's products are kept by each process under the catalogue's version, as pages are.
    customer = Browser()
    page = customer.get(f"{shop.urls[0]}/p/{shop.slug}")
    page = customer.submit(page.form("/cart/add"), quantity=1)
    assert "Added 1 × Kenya Nyeri to your cart." in page
    for text in views(customer, shop, "/cart/"):
        assert "Kenya Nyeri" in text and "€14.90" not in text
    change_price(shop, "14.90")
    first, then = views(customer, shop, "/cart/")
    assert "The price of Kenya Nyeri changed from" in first and "to €14.90." in first
    for text in (first, then):
        assert '<td class="num cart-total">€14.90</td>' in text


def test_stock_taken_by_an_order_on_one_process_shows_on_the_next_view_of_both(shop):
    path = f"/p/{shop.slug}"
    customer = Browser()
    assert all("In stock" in text for text in views(customer, shop, path))
    buyer = Browser()
    page = to_gateway(SimpleNamespace(url=shop.urls[1]), buyer, shop.slug, quantity=4)
    assert page.status == 200, page.text  # the order took 4 of the 8 when it was placed
    for text in views(customer, shop, path):
        assert "Only 4 left" in text and "In stock" not in text


def test_one_customers_cart_flash_and_csrf_token_never_reach_another(shop):
    path = f"/p/{shop.slug}"
    first, second = Browser(), Browser()
    # The first customer's error comes back on the product page, which each process has cached.
    views(first, shop, path)
    page = first.get(shop.urls[0] + path)
    page = first.submit(page.form("/cart/add"), quantity=0)
    assert page.url.endswith(path) and "notice error" in page.text
    page = first.submit(page.form("/cart/add"), quantity=1)
    assert "Added 1 × Kenya Nyeri to your cart." in page
    first_pages = views(first, shop, path)
    second_pages = views(second, shop, path)
    for text in first_pages:
        assert '<span class="cart-count">1</span>' in text
    for text in second_pages:
        assert '<span class="cart-count">0</span>' in text
        assert "Added 1" not in text and "notice error" not in text
    first_tokens = {CSRF.search(text).group(1) for text in first_pages}
    second_tokens = {CSRF.search(text).group(1) for text in second_pages}
    assert first_tokens.isdisjoint(second_tokens)
    # The token on the second customer's page is the second customer's: it adds to their cart,
    # and the first customer's token is refused in their session.
    page = second.get(shop.urls[1] + path)
    form = page.form("/cart/add")
    stolen = dict(form.fields, csrf_token=first_tokens.pop(), quantity="1")
    refused = second.http.post(shop.urls[1] + "/cart/add", data=stolen, timeout=30)
    assert refused.status_code == 400
    page = second.submit(form, quantity=2)
    assert "Added 2 × Kenya Nyeri to your cart." in page
    assert '<span class="cart-count">1</span>' in views(first, shop, "/")[1]


def test_a_304_only_while_nothing_on_the_page_changed_on_either_process(shop):
    customer = Browser()
    first = customer.http.get(shop.urls[0] + "/", timeout=30)
    etag = first.headers["ETag"]
    for base in shop.urls:
        same = customer.http.get(base + "/", headers={"If-None-Match": etag}, timeout=30)
        assert same.status_code == 304 and same.content == b""
    # The customer's own part of the page changes: their cart.
    page = customer.get(f"{shop.urls[1]}/p/{shop.slug}")
    customer.submit(page.form("/cart/add"), quantity=1)
    for base in shop.urls:
        changed = customer.http.get(base + "/", headers={"If-None-Match": etag}, timeout=30)
        assert changed.status_code == 200 and '<span class="cart-count">1</span>' in changed.text
    etag = changed.headers["ETag"]
    # The catalogue changes: another product on the home page.
    with shop.app.app_context():
        from storefront.catalogue.models import Category
        from storefront.extensions import db

        coffee = db.session.execute(db.select(Category)).scalars().first()
        make_product(name="Rwanda Huye", price=990, stock=3, category=coffee)
    for base in shop.urls:
        changed = customer.http.get(base + "/", headers={"If-None-Match": etag}, timeout=30)
        assert changed.status_code == 200 and "Rwanda Huye" in changed.text
