"""The catalogue and stock from the back office: products with their pictures, categories one
level deep, stock changed with a reason, and the history of every change of stock."""

from __future__ import annotations

import re
from io import BytesIO

import pytest
from PIL import Image
from sqlalchemy import select

from storefront.admin.models import AuditEntry
from storefront.catalogue.models import Category, Product, StockMovement
from storefront.extensions import db
from storefront.orders import service as orders
from storefront.orders.models import Order, OrderState
from tests.back_office import OWNER, Office, make_account, picture
from tests.browser import Page
from tests.factories import make_category, make_product


@pytest.fixture
def office(app, client, tmp_path):
    app.config["UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    make_account(app)
    office = Office(client)
    assert "Signed in" in office.sign_in()
    return office


@pytest.fixture
def coffee(app):
    with app.app_context():
        return make_category("Coffee").id


def fetched(client, url: str):
    """A GET whose body is read and whose file is closed (a served picture is a file)."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def add_product(office: Office, files=None, **values):
    page = office.get("/admin/products/new")
    fields = {"name": "Kenya Nyeri, 250 g", "price": "12.50", "stock": "7", **values}
    return office.submit(page.form("/admin/products/new"), files=files, **fields)


def product_named(app, name: str) -> Product | None:
    with app.app_context():
        found = db.session.execute(select(Product).where(Product.name == name)).scalar()
        if found is not None:
            db.session.expunge(found)
        return found


def movements(app, product_id: int) -> list[tuple[int, str, str, int | None]]:
    with app.app_context():
        rows = db.session.execute(
            select(StockMovement)
            .where(StockMovement.product_id == product_id)
            .order_by(StockMovement.id)
        ).scalars()
        return [(m.delta, m.reason, m.actor, m.order_id) for m in rows]


# Products ------------------------------------------------------------------------------------
def test_a_product_added_with_a_picture_is_in_the_shop_at_once(app, client, office, coffee):
    jpeg = BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0131] = "where-i-live"  # Software
    Image.new("RGB", (80, 60), (10, 120, 30)).save(jpeg, format="JPEG", exif=exif)
    assert b"SecretCam" in jpeg.getvalue()

    page = add_product(
        office,
        files={"picture": (jpeg.getvalue(), "../../etc/photo.jpg")},
        image_alt="A green bag of coffee",
        description="Blackcurrant and tomato.",
        tax_class="reduced",
    )
    assert "Kenya Nyeri, 250 g is in the catalogue." in page
    made = product_named(app, "Kenya Nyeri, 250 g")
    assert (made.slug, made.price, made.stock, made.tax_class) == (
        "kenya-nyeri-250-g",
        1250,
        7,
        "reduced",
    )
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", made.upload)  # a name of ours, not the sender's

    shop_page = client.get("/p/kenya-nyeri-250-g").get_data(as_text=True)
    assert f'src="/media/{made.upload}"' in shop_page and 'alt="A green bag of coffee"' in shop_page
    served = fetched(client, f"/media/{made.upload}")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert b"SecretCam" not in served.data and b"where-i-live" not in served.data
    assert Image.open(BytesIO(served.data)).size == (80, 60)
    assert movements(app, made.id) == [(7, "manual", OWNER, None)]


def test_price_and_details_edited_show_in_the_shop_at_once(app, client, office, coffee):
    add_product(office)
    made = product_named(app, "Kenya Nyeri, 250 g")
    page = office.get(f"/admin/products/{made.id}")
    form = page.form(f"/admin/products/{made.id}")
    assert form.fields["price"] == "12.50"
    page = office.submit(form, price="9.90", name="Kenya Nyeri, 250 g")
    assert "Kenya Nyeri, 250 g is saved." in page
    assert product_named(app, "Kenya Nyeri, 250 g").price == 990
    assert "€9.90" in client.get("/p/kenya-nyeri-250-g").get_data(as_text=True)
    with app.app_context():
        entry = db.session.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).scalar()
        assert (entry.actor, entry.action, entry.detail) == (
            OWNER,
            "product edited",
            "price 12.50 → 9.90",
        )


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"price": "abc"}, "Type the price in EUR as a plain number"),
        ({"price": "0"}, "The price must be more than zero."),
        ({"price": "12.505"}, "Type the price in EUR as a plain number"),
        ({"slug": "Not A Slug!"}, "Lower-case letters, digits and single hyphens"),
        ({"stock": "-1"}, "Number must be between 0 and 1000000."),
        ({"name": ""}, "This field is required."),
        ({"name": "x" * 201}, "Field cannot be longer than 200 characters."),
    ],
)
def test_bad_product_input_is_a_form_error_and_nothing_is_saved(app, office, coffee, values, says):
    page = add_product(office, **values)
    assert page.status == 422 and says in page
    assert 'role="alert"' in page.text
    with app.app_context():
        assert db.session.execute(select(Product)).first() is None


def test_a_slug_is_derived_unique_and_a_typed_one_taken_is_refused(app, office, coffee):
    add_product(office, name="Kenya Nyeri")
    add_product(office, name="Kenya Nyeri")
    with app.app_context():
        slugs = db.session.execute(select(Product.slug).order_by(Product.id)).scalars().all()
    assert slugs == ["kenya-nyeri", "kenya-nyeri-2"]
    page = add_product(office, name="Another", slug="kenya-nyeri")
    assert page.status == 422 and "The address kenya-nyeri is used already" in page


@pytest.mark.parametrize(
    ("content", "filename", "says"),
    [
        (b"<html><script>alert(1)</script></html>", "evil.png", "not a picture the shop can read"),
        (picture("GIF"), "moving.gif", "Upload a JPEG, PNG or WebP picture."),
        (picture("BMP"), "old.bmp", "Upload a JPEG, PNG or WebP picture."),
        (picture("PNG")[:60], "cut.png", "damaged or cut short"),
        (b"", "empty.png", "The file is empty."),
    ],
)
def test_a_file_that_is_not_an_accepted_picture_is_refused(
    app, office, coffee, content, filename, says
):
    page = add_product(office, files={"picture": (content, filename)}, image_alt="A picture")
    assert page.status == 422 and says in page
    assert product_named(app, "Kenya Nyeri, 250 g") is None


def test_a_decompression_bomb_is_refused_before_it_is_decoded(app, office, coffee):
    bomb = BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, format="PNG")  # 100 megapixels in a few KB
    assert len(bomb.getvalue()) < 100_000
    page = add_product(office, files={"picture": (bomb.getvalue(), "bomb.png")}, image_alt="x")
    assert page.status == 422 and "too many pixels" in page


def test_pictures_over_the_size_limit_are_refused_with_a_clear_page(app, office, coffee):
    app.config["UPLOAD_MAX_BYTES"] = 2000
    big = picture("PNG", size=(100, 100), colour=(1, 2, 3), compress_level=0)
    page = add_product(office, files={"picture": (big, "big.png")}, image_alt="x")
    assert page.status == 422 and "larger than 1 MB" in page
    huge = b"\x89PNG" + b"0" * 400_000  # past even the form's room: refused unread
    page = add_product(office, files={"picture": (huge, "huge.png")}, image_alt="x")
    assert page.status == 413 and "The picture is too large" in page


def test_a_picture_needs_its_alt_text(app, office, coffee):
    page = add_product(office, files={"picture": (picture(), "bag.png")})
    assert page.status == 422 and "Describe the picture for people who cannot see it" in page


def test_the_media_route_serves_uploaded_pictures_only(app, client, office, coffee, tmp_path):
    folder = tmp_path / "uploads"
    add_product(office, files={"picture": (picture("WEBP"), "bag.webp")}, image_alt="A bag")
    name = product_named(app, "Kenya Nyeri, 250 g").upload
    assert (folder / name).is_file() and name.endswith(".webp")
    assert fetched(client, f"/media/{name}").mimetype == "image/webp"
    (folder / "page.html").write_text("<script>alert(1)</script>")
    for bad in ("page.html", "..%2Fshop.db", "0" * 32 + ".svg", "0" * 32 + ".png", "x.jpg"):
        assert fetched(client, f"/media/{bad}").status_code == 404, bad


def test_the_demo_pictures_still_show(app, client, coffee):
    with app.app_context():
        product = make_product(name="Demo")
        product.image = "ethiopia-yirgacheffe.svg"
        db.session.commit()
        slug = product.slug
    page = client.get(f"/p/{slug}").get_data(as_text=True)
    assert 'src="/static/img/products/ethiopia-yirgacheffe.svg"' in page


def test_archive_hides_a_product_and_an_ordered_one_cannot_be_deleted(app, client, office, coffee):
    add_product(office)
    made = product_named(app, "Kenya Nyeri, 250 g")
    page = office.get(f"/admin/products/{made.id}")
    page = office.submit(page.form("/archive"))
    assert "is archived" in page and client.get(f"/p/{made.slug}").status_code == 404
    page = office.submit(page.form("/restore"))
    assert "is back in the shop" in page and client.get(f"/p/{made.slug}").status_code == 200

    with app.app_context():
        product = db.session.get(Product, made.id)
        orders.place_order([(product, 1)], customer(), "checkout-key-" + "k" * 20)
    page = office.get(f"/admin/products/{made.id}")
    assert "cannot be deleted: archive it instead" in page
    assert not any(f.action.endswith("/delete") for f in page.forms)
    response = office.client.post(
        f"/admin/products/{made.id}/delete", data=page.form("/archive").fields
    )
    assert response.status_code == 303
    assert product_named(app, "Kenya Nyeri, 250 g") is not None


def test_a_product_never_ordered_can_be_deleted(app, office, coffee):
    add_product(office)
    made = product_named(app, "Kenya Nyeri, 250 g")
    page = office.get(f"/admin/products/{made.id}")
    page = office.submit(page.form("/delete"))
    assert "The product is deleted." in page
    assert product_named(app, "Kenya Nyeri, 250 g") is None


# Stock -------------------------------------------------------------------------------------
def customer() -> orders.CustomerDetails:
    return orders.CustomerDetails("ann@example.com", "Ann", "1 Main St", "Dublin", "D01", "IE")


def test_stock_changes_with_a_reason_and_never_below_zero(app, office, coffee):
    add_product(office, stock="3")
    made = product_named(app, "Kenya Nyeri, 250 g")
    page = office.get(f"/admin/products/{made.id}")
    page = office.submit(page.form("/stock"), delta="12", note="delivery from the roaster")
    assert "Stock of Kenya Nyeri, 250 g is now 15." in page
    page = office.submit(page.form("/stock"), delta="-16", note="counted")
    assert page.status == 422 and "Only 15 in stock" in page
    page = office.submit(page.form("/stock"), delta="0", note="nothing")
    assert page.status == 422 and "A change of zero changes nothing." in page
    page = office.submit(page.form("/stock"), delta="2", reason="refund_restock", note="back")
    assert page.status == 422 and "Give the order the goods came back from." in page
    page = office.submit(
        page.form("/stock"), delta="2", reason="refund_restock", order="123", note="back"
    )
    assert page.status == 422 and "There is no order 123." in page
    assert product_named(app, "Kenya Nyeri, 250 g").stock == 15
    assert movements(app, made.id) == [(3, "manual", OWNER, None), (12, "manual", OWNER, None)]
    assert "delivery from the roaster" in office.get(f"/admin/products/{made.id}")


def test_sales_releases_and_refund_restocks_are_in_the_history(app, office, coffee):
    with app.app_context():
        product = make_product(name="Sidamo", stock=5)
        product_id = product.id
        order, _ = orders.place_order([(product, 2)], customer(), "checkout-key-" + "s" * 20)
        order_id, number = order.id, order.number
        orders.transition(order, OrderState.EXPIRED, "payment window passed")
        db.session.commit()
        again, _ = orders.place_order(
            [(db.session.get(Product, product_id), 1)], customer(), "checkout-key-" + "t" * 20
        )
        again_id, again_number = again.id, again.number
    page = office.get(f"/admin/products/{product_id}")
    page = office.submit(
        page.form("/stock"),
        delta="1",
        reason="refund_restock",
        order=again_number,
        note="bag returned",
    )
    assert "is now 5" in page
    assert movements(app, product_id) == [
        (-2, "sale", "shop", order_id),
        (2, "release", "shop", order_id),
        (-1, "sale", "shop", again_id),
        (1, "refund_restock", OWNER, again_id),
    ]
    assert f"order {number}" in page and "refund restock" in page
    with app.app_context():
        assert db.session.get(Order, order_id).state == OrderState.EXPIRED


def test_an_order_refused_for_stock_leaves_no_movement(app):
    with app.app_context():
        product = make_product(name="Last one", stock=1)
        with pytest.raises(orders.OutOfStock):
            orders.place_order([(product, 2)], customer(), "checkout-key-" + "u" * 20)
        assert db.session.execute(select(StockMovement)).first() is None


# Categories --------------------------------------------------------------------------------
def add_category(office: Office, **values) -> Page:
    page = office.get("/admin/categories/new")
    return office.submit(page.form("/admin/categories/new"), **values)


def category_named(app, name: str) -> Category:
    with app.app_context():
        found = db.session.execute(select(Category).where(Category.name == name)).scalar_one()
        db.session.expunge(found)
        return found


def test_categories_nest_one_level_and_keep_their_menu_order(app, client, office):
    add_category(office, name="Tea", position="2")
    add_category(office, name="Coffee", position="1")
    tea = category_named(app, "Tea")
    page = add_category(office, name="Green tea", position="1", parent=str(tea.id))
    assert "The category Green tea is saved." in page
    green = category_named(app, "Green tea")
    assert (green.slug, green.parent_id) == ("green-tea", tea.id)
    names = re.findall(
        r'<th scope="row">(?:<span aria-hidden="true">↳ </span>)?<a [^>]*>([^<]+)</a>', page.text
    )
    assert names == ["Coffee", "Tea", "Green tea"]

    # Two levels deep is refused, whichever way it is tried: only top-level categories are
    # offered as parents, and a category with children is offered none.
    page = add_category(office, name="Sencha", parent=str(green.id))
    assert page.status == 422 and "Not a valid choice" in page
    page = office.get(f"/admin/categories/{tea.id}")
    form = page.form(f"/admin/categories/{tea.id}")
    assert form.selects["parent"] == ["0"]
    coffee_id = category_named(app, "Coffee").id
    page = office.submit(form, parent=str(coffee_id))
    assert page.status == 422 and "Not a valid choice" in page
    assert category_named(app, "Tea").parent_id is None
    assert client.get("/c/green-tea").status_code == 200


def test_a_taken_category_slug_is_refused(app, office):
    add_category(office, name="Tea")
    page = add_category(office, name="Tisanes", slug="tea")
    assert page.status == 422 and "The address tea is used already" in page


# The pages themselves ----------------------------------------------------------------------
def test_catalogue_pages_have_no_script_and_a_label_for_every_input(app, office, coffee):
    add_product(office, files={"picture": (picture(), "bag.png")}, image_alt="A bag")
    made = product_named(app, "Kenya Nyeri, 250 g")
    for url in (
        "/admin/products",
        "/admin/products/new",
        f"/admin/products/{made.id}",
        "/admin/categories",
        "/admin/categories/new",
        f"/admin/categories/{coffee}",
        "/admin/activity",
    ):
        page = office.get(url)
        assert page.status == 200, url
        text = page.text
        assert "<script" not in text.lower() and not re.search(r"\s(style|on[a-z]+)=", text)
        labels = set(re.findall(r'<label[^>]*for="([^"]+)"', text))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", text):
            if re.search(r'type="(hidden|submit)"', tag):
                continue
            assert re.search(r'id="([^"]+)"', tag).group(1) in labels, (url, tag)
        for th in re.findall(r"<th\b[^>]*>", text):
            assert "scope=" in th, (url, th)


def test_every_change_names_who_made_it(app, office, coffee):
    add_product(office)
    add_category(office, name="Tea")
    page = office.get("/admin/activity")
    assert page.text.count(OWNER) >= 2
    assert "product created" in page and "category created" in page


def test_the_service_refuses_nesting_two_levels_deep_too(app):
    from storefront.admin import catalogue_service as service

    with app.app_context():
        top = service.save_category(None, "Tea", "", "", 1, 0, OWNER)
        child = service.save_category(None, "Green", "", "", 1, top.id, OWNER)
        with pytest.raises(service.CatalogueRefused, match="inside another category itself"):
            service.save_category(None, "Sencha", "", "", 1, child.id, OWNER)
        other = service.save_category(None, "Coffee", "", "", 2, 0, OWNER)
        with pytest.raises(service.CatalogueRefused, match="cannot go inside another"):
            service.save_category(top, "Tea", "tea", "", 1, other.id, OWNER)


def test_the_product_form_needs_its_csrf_token_even_with_a_picture(app, office, coffee):
    form = office.get("/admin/products/new").form("/admin/products/new")
    fields = {**form.fields, "csrf_token": "forged", "name": "Forged", "price": "1.00"}
    fields["picture"] = (BytesIO(picture()), "bag.png")
    response = office.client.post(
        "/admin/products/new", data=fields, content_type="multipart/form-data"
    )
    assert (
        response.status_code == 422
        and "This form has expired or was sent from elsewhere" in response.get_data(as_text=True)
    )
    assert product_named(app, "Forged") is None
    response = office.client.post("/admin/categories/new", data={"name": "Forged", "position": "1"})
    assert response.status_code == 400


def test_a_palette_png_with_transparency_keeps_it(app, client, office, coffee):
    out = BytesIO()
    Image.new("P", (20, 20), 0).save(out, format="PNG", transparency=0)
    add_product(office, files={"picture": (out.getvalue(), "clear.png")}, image_alt="Nothing")
    served = fetched(client, f"/media/{product_named(app, 'Kenya Nyeri, 250 g').upload}")
    assert Image.open(BytesIO(served.data)).mode == "RGBA"


def test_a_relative_upload_folder_is_the_same_for_saving_and_serving(
    app, client, office, coffee, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    app.config["UPLOAD_FOLDER"] = "pictures"
    add_product(office, files={"picture": (picture(), "bag.png")}, image_alt="A bag")
    name = product_named(app, "Kenya Nyeri, 250 g").upload
    assert (tmp_path / "pictures" / name).is_file()
    assert fetched(client, f"/media/{name}").status_code == 200
