"""The catalogue and stock pages of the back office: products, their pictures and stock, and
the categories. Every member of staff may use them; each change records who made it.

The pages join the admin blueprint (and so its sign-in guard); the shop's pages show changes
at once, since they read the database (their cache is keyed on a version that changes with
every product or category saved).
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from storefront.admin import audit, auth
from storefront.admin import catalogue_service as service
from storefront.admin.catalogue_forms import CategoryForm, ProductForm, StockForm
from storefront.admin.forms import EmptyForm, required
from storefront.admin.images import ImageRefused
from storefront.admin.views import bp
from storefront.catalogue.models import Category, Product
from storefront.errors import render_error
from storefront.extensions import csrf, db
from storefront.money import to_major

# The body may hold a picture: allow the largest one accepted, plus the form around it.
FORM_ROOM = 256 * 1024


def _actor() -> str:
    return auth.signed_in_staff().email


def _product_or_404(product_id: int) -> Product:
    return db.get_or_404(Product, product_id)


def _category_choices() -> list[tuple[int, str]]:
    return [
        (c.id, f"{c.parent.name} › {c.name}" if c.parent else c.name) for c in service.categories()
    ]


# Products ----------------------------------------------------------------------------------
@bp.get("/products")
def products():
    """Every product, archived ones included, with its price and stock."""
    return render_template("admin/products.html", products=service.products())


def _product_form(product: Product | None, bound: bool = True):
    """The product form, read from the request (``bound``) or from ``product``; None if the
    body was larger than any picture accepted."""
    request.max_content_length = current_app.config["UPLOAD_MAX_BYTES"] + FORM_ROOM
    extra = {} if bound else {"formdata": None}
    try:
        form = ProductForm(obj=product, has_picture=bool(product and product.image_url), **extra)
    except RequestEntityTooLarge:
        return None
    form.category.choices = _category_choices()
    if product is not None:
        del form.stock  # after creation, stock changes go through a movement with a reason
        if request.method == "GET" or not bound:
            form.price.data = to_major(product.price, current_app.config["CURRENCY"])
            form.category.data = product.category_id
    return form


def _too_large():
    limit = current_app.config["UPLOAD_MAX_BYTES"] // (1024 * 1024) or 1
    return render_error(413, f"The picture is too large: {limit} MB at most. Nothing was saved.")


def _save(product: Product | None, form: ProductForm):
    """Save the form's product; None when the service refused, with the error on the form."""
    data = service.ProductData(
        name=required(form.name.data),
        slug=form.slug.data or "",
        description=form.description.data or "",
        price=required(form.minor),
        category_id=form.category.data,
        tax_class=form.tax_class.data,
        image_alt=form.image_alt.data or "",
        stock=form.stock.data if product is None else None,
    )
    picture = form.picture.data if getattr(form.picture.data, "filename", "") else None
    try:
        return service.save_product(product, data, picture, _actor())
    except ImageRefused as refused:
        form.picture.errors.append(str(refused))
    except service.CatalogueRefused as refused:
        form[refused.field or "name"].errors.append(str(refused))
    db.session.rollback()
    return None


@bp.route("/products/new", methods=("GET", "POST"))
@csrf.exempt  # the form checks its own token, once the body's larger limit is set
def new_product():
    """Add a product, with its first stock and a picture."""
    form = _product_form(None)
    if form is None:
        return _too_large()
    if form.validate_on_submit():
        saved = _save(None, form)
        if saved is not None:
            flash(f"{saved.name} is in the catalogue.")
            return redirect(url_for("admin.product", product_id=saved.id), code=303)
    status = 422 if form.errors else 200
    return render_template("admin/product_form.html", form=form, product=None), status


@bp.route("/products/<int:product_id>", methods=("GET", "POST"))
@csrf.exempt  # the form checks its own token, once the body's larger limit is set
def product(product_id: int):
    """Edit a product; its stock, stock history, archive and delete.

    :raise 404: no such product.
    """
    current = _product_or_404(product_id)
    form = _product_form(current)
    if form is None:
        return _too_large()
    if form.validate_on_submit() and _save(current, form) is not None:
        flash(f"{current.name} is saved.")
        return redirect(url_for("admin.product", product_id=current.id), code=303)
    status = 422 if form.errors else 200
    return _render_product(current, form=form, status=status)


def _render_product(current: Product, form=None, stock_form=None, status: int = 200):
    movements = service.history(current)
    return render_template(
        "admin/product.html",
        product=current,
        form=form or _product_form(current, bound=False),
        stock_form=stock_form or StockForm(formdata=None),
        movements=movements,
        order_numbers=service.order_numbers(movements),
        ordered=service.was_ordered(current),
        button_form=EmptyForm(formdata=None),
    ), status


@bp.post("/products/<int:product_id>/stock")
def adjust_stock(product_id: int):
    """Add to or take from a product's stock, with a reason. :raise 404: no such product."""
    current = _product_or_404(product_id)
    form = StockForm()
    if form.validate_on_submit():
        try:
            service.adjust_stock(
                current,
                required(form.delta.data),
                form.reason.data,
                required(form.note.data),
                form.order.data or "",
                _actor(),
            )
        except service.CatalogueRefused as refused:
            form[refused.field].errors.append(str(refused))
        else:
            flash(f"Stock of {current.name} is now {current.stock}.")
            return redirect(url_for("admin.product", product_id=current.id, _anchor="stock"), 303)
    return _render_product(current, stock_form=form, status=422)


@bp.post("/products/<int:product_id>/archive", defaults={"change": "archive"})
@bp.post("/products/<int:product_id>/restore", defaults={"change": "restore"})
def archive_product(product_id: int, change: str):
    """Hide a product from the shop, or show it again. :raise 404: no such product."""
    current = _product_or_404(product_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    service.set_active(current, change == "restore", _actor())
    flash(f"{current.name} is {'back in the shop' if current.active else 'archived'}.")
    return redirect(url_for("admin.product", product_id=current.id), code=303)


@bp.post("/products/<int:product_id>/delete")
def delete_product(product_id: int):
    """Delete a product never ordered. :raise 404: no such product."""
    current = _product_or_404(product_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        service.delete_product(current, _actor())
    except service.CatalogueRefused as refused:
        flash(str(refused), "error")
        return redirect(url_for("admin.product", product_id=current.id), code=303)
    flash("The product is deleted.")
    return redirect(url_for("admin.products"), code=303)


# Categories --------------------------------------------------------------------------------
@bp.get("/categories")
def categories():
    """Categories in menu order, each top-level one followed by those inside it."""
    every = service.categories()
    counts = {c.id: service.product_count(c) for c in every}
    return render_template("admin/categories.html", categories=every, counts=counts)


@bp.route("/categories/new", methods=("GET", "POST"))
def new_category():
    """Add a category, at the top level or inside another."""
    return _category_page(None)


@bp.route("/categories/<int:category_id>", methods=("GET", "POST"))
def category(category_id: int):
    """Edit a category: name, address, menu position, parent. :raise 404: no such category."""
    return _category_page(db.get_or_404(Category, category_id))


def _category_page(current: Category | None):
    form = CategoryForm(obj=current)
    form.parent.choices = service.parent_choices(current)
    if current is not None and request.method == "GET":
        form.parent.data = current.parent_id or 0
    if form.validate_on_submit():
        try:
            saved = service.save_category(
                current,
                required(form.name.data),
                form.slug.data or "",
                form.description.data or "",
                required(form.position.data),
                form.parent.data,
                _actor(),
            )
        except service.CatalogueRefused as refused:
            db.session.rollback()
            form[refused.field].errors.append(str(refused))
        else:
            flash(f"The category {saved.name} is saved.")
            return redirect(url_for("admin.categories"), code=303)
    status = 422 if form.errors else 200
    return render_template("admin/category_form.html", form=form, category=current), status


# Who changed what ----------------------------------------------------------------------------
@bp.get("/activity")
def activity():
    """Who changed what in the catalogue, the stock and the staff accounts, newest first."""
    return render_template("admin/activity.html", entries=audit.latest())
