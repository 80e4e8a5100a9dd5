"""A merchant's day in Chromium with JavaScript off: sign in, add a category and a product with
a picture, see it in the shop, change its price and stock, sell it on the sandbox gateway, and
find the sale in the stock history. Screenshots of each step are kept in test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from sqlalchemy import select

from storefront.catalogue.models import Product
from storefront.orders.models import OrderState
from tests.back_office import OWNER, PASSWORD, make_account
from tests.browser import Browser
from tests.journeys import latest_order, pay_rbs, to_gateway, wait_for

pytestmark = pytest.mark.browser


def bag_picture(path) -> str:
    """A small drawing of a coffee bag, as a camera would send it: a JPEG with EXIF."""
    picture = Image.new("RGB", (600, 600), (244, 236, 224))
    draw = ImageDraw.Draw(picture)
    draw.rounded_rectangle((170, 110, 430, 520), radius=24, fill=(46, 94, 78))
    draw.rectangle((210, 250, 390, 380), fill=(250, 248, 240))
    draw.ellipse((265, 275, 335, 355), fill=(120, 72, 40))
    exif = Image.Exif()
    exif[0x010F] = "PocketCam"
    picture.save(path, format="JPEG", quality=90, exif=exif)
    return str(path)


def test_a_merchants_day_in_chromium(page, make_shop, sandbox, tmp_path):
    shop = make_shop(UPLOAD_FOLDER=str(tmp_path / "uploads"))
    make_account(shop.app, OWNER)

    page.goto(f"{shop.url}/admin/products")
    assert "/admin/sign-in" in page.url
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("heading", name="Products").is_visible()

    # A category first: products live in one.
    page.get_by_role("link", name="Categories", exact=True).click()
    page.get_by_role("link", name="Add a category").click()
    page.get_by_label("Name").fill("Single origin")
    page.get_by_role("button", name="Add the category").click()
    assert page.get_by_role("status").filter(has_text="Single origin is saved").is_visible()

    # The product, with its picture.
    page.get_by_role("link", name="Products", exact=True).click()
    page.get_by_role("link", name="Add a product").click()
    page.get_by_label("Name", exact=True).fill("Rwanda Huye, 250 g")
    page.get_by_label("Price (EUR)").fill("11.00")
    page.get_by_label("Category").select_option(label="Single origin")
    page.get_by_label("Stock", exact=True).fill("4")
    page.get_by_label("Description", exact=True).fill("Red apple, black tea and brown sugar.")
    page.get_by_label("Picture (JPEG, PNG or WebP)").set_input_files(
        bag_picture(tmp_path / "bag.jpg")
    )
    page.get_by_label("Picture description (alt text)").fill(
        "A green coffee bag with a white label"
    )
    page.shot("new-product")
    page.get_by_role("button", name="Add the product").click()
    assert page.get_by_role("status").filter(has_text="is in the catalogue").is_visible()
    page.shot("product-added")

    # In the shop at once, with the picture served as an image.
    page.get_by_role("link", name="See it in the shop").click()
    assert page.get_by_role("heading", name="Rwanda Huye, 250 g").is_visible()
    assert "€11.00" in page.content()
    picture = page.get_by_role("img", name="A green coffee bag with a white label")
    src = picture.get_attribute("src")
    assert src.startswith("/media/")
    served = page.request.get(f"{shop.url}{src}")
    assert served.headers["content-type"] == "image/jpeg" and b"PocketCam" not in served.body()
    page.shot("in-the-shop")

    # A new price, and a delivery of six bags.
    page.goto(f"{shop.url}/admin/products")
    page.get_by_role("link", name="Rwanda Huye, 250 g").click()
    page.get_by_label("Price (EUR)").fill("9.50")
    page.get_by_role("button", name="Save changes").click()
    assert page.get_by_role("status").filter(has_text="is saved").is_visible()
    page.get_by_label("Change (e.g. 12 or -3)").fill("6")
    page.get_by_label("Note").fill("delivery from the roaster")
    page.get_by_role("button", name="Change the stock").click()
    assert page.get_by_role("status").filter(has_text="is now 10").is_visible()
    page.goto(f"{shop.url}/p/rwanda-huye-250-g")
    assert "€9.50" in page.content()

    # A customer buys two on the sandbox gateway.
    customer = Browser()
    to_gateway(shop, customer, "rwanda-huye-250-g", quantity=2)
    paid = pay_rbs(customer)
    assert paid.url.startswith(shop.url + "/order/"), paid.text
    order, [attempt] = latest_order(shop)
    assert order.state == OrderState.PAID and order.total == 1900
    with shop.db() as session:
        product = session.execute(
            select(Product).where(Product.slug == "rwanda-huye-250-g")
        ).scalar_one()
        assert product.stock == 8

    # The sale, in the stock history, with its order.
    page.goto(f"{shop.url}/admin/products")
    page.get_by_role("link", name="Rwanda Huye, 250 g").click()
    assert page.get_by_role("heading", name="Stock: 8").is_visible()
    history = page.locator("#history table")
    sale = history.locator("tbody tr").first
    assert "-2" in sale.inner_text() and "sale" in sale.inner_text()
    assert sale.get_by_role("link", name=f"order {order.number}").is_visible()
    assert "delivery from the roaster" in history.inner_text()
    page.shot("stock-history")

    # The parcel goes out: carrier and tracking number, and the customer is told.
    page.goto(f"{shop.url}/admin/orders/{order.number}")
    page.get_by_label("Carrier").fill("An Post")
    page.get_by_label("Tracking number").fill("CE123456789IE")
    page.get_by_role("button", name="Mark dispatched").click()
    assert page.get_by_role("status").filter(has_text="marked dispatched").is_visible()
    page.shot("dispatched")
    folder = Path(shop.app.instance_path) / "mail"

    def dispatched_mails() -> list[Path]:
        return list(folder.glob(f"{order.number}-dispatched-*.eml"))

    # Sent once the answer has gone out, or else by the reconciler's next pass, as here.
    if not wait_for(lambda: len(dispatched_mails()) == 1, seconds=5.0):
        with shop.app.app_context():
            from storefront.extensions import db
            from storefront.orders.mail import drain

            drain()
            db.session.remove()
    assert len(dispatched_mails()) == 1
    [mail] = dispatched_mails()
    assert "CE123456789IE" in mail.read_text()

    # One bag comes back torn: refund it, and it goes back on the shelf.
    page.get_by_label("Quantity of Rwanda Huye, 250 g to refund").fill("1")
    page.get_by_label("Put Rwanda Huye, 250 g back in stock").check()
    page.locator("#refund-lines").get_by_label("Why is it refunded?").fill("one bag arrived torn")
    page.shot("refund-a-line")
    page.get_by_role("button", name="Refund the chosen lines").click()
    page.shot("line-refunded")
    refunded, [attempt] = latest_order(shop)
    assert refunded.state == OrderState.PARTIALLY_REFUNDED and attempt.refunded == 950
    with shop.db() as session:
        product = session.execute(
            select(Product).where(Product.slug == "rwanda-huye-250-g")
        ).scalar_one()
        assert product.stock == 9

    # The order's whole story, oldest first.
    history = page.locator("#history table").inner_text()
    steps = ["pending payment", "paid", "dispatched", "partially refunded"]
    positions = [history.lower().find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), history
    assert "An Post" in history or "CE123456789IE" in page.content()
    page.shot("order-timeline")

    page.get_by_role("link", name="Activity").click()
    assert page.get_by_role("cell", name="product created").is_visible()
    page.shot("activity")
    page.get_by_role("link", name="Dashboard").click()
    assert "€19.00" in page.content()  # today's takings: the sale
    page.shot("dashboard")

    # The evening: two-step sign-in for the owner's own account.
    page.get_by_role("link", name="Your account").click()
    page.get_by_role("button", name="Set up two-step sign-in").click()
    assert page.get_by_text("otpauth://totp/").is_visible()
    page.shot("two-step")
