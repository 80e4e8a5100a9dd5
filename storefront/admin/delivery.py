"""The delivery pages of the back office: the methods a customer may choose at checkout, what
they cost, above which basket they are free and where they go. Every member of staff may use
them, as the catalogue pages; each change records who made it."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, url_for

from storefront.admin import auth
from storefront.admin import delivery_service as service
from storefront.admin.delivery_forms import DeliveryMethodForm
from storefront.admin.forms import required
from storefront.admin.views import bp
from storefront.checkout.models import DeliveryMethod
from storefront.extensions import db
from storefront.money import to_major


@bp.get("/delivery")
def delivery_methods():
    """Every delivery method, in checkout order, inactive ones included."""
    return render_template("admin/delivery_methods.html", methods=service.methods())


@bp.route("/delivery/new", methods=("GET", "POST"))
def new_delivery_method():
    """Add a delivery method."""
    return _method_page(None)


@bp.route("/delivery/<int:method_id>", methods=("GET", "POST"))
def delivery_method(method_id: int):
    """Edit a delivery method. :raise 404: no such method."""
    return _method_page(db.get_or_404(DeliveryMethod, method_id))


def _method_page(current: DeliveryMethod | None):
    form = DeliveryMethodForm(data=_as_typed(current) if current is not None else None)
    if form.validate_on_submit():
        saved = service.save_delivery_method(
            current,
            service.DeliveryMethodData(
                name=required(form.name.data),
                price=required(form.minor),
                free_over=form.free_minor,
                countries=form.country_list,
                active=bool(form.active.data),
                position=required(form.position.data),
            ),
            auth.signed_in_staff().email,
        )
        flash(f"The delivery method {saved.name} is saved.")
        return redirect(url_for("admin.delivery_methods"), code=303)
    status = 422 if form.errors else 200
    return render_template("admin/delivery_method_form.html", form=form, method=current), status


def _as_typed(method: DeliveryMethod) -> dict:
    """The method's values as the form shows them: amounts in major units."""
    currency = current_app.config["CURRENCY"]
    return {
        "name": method.name,
        "price": to_major(method.price, currency),
        "free_over": "" if method.free_over is None else to_major(method.free_over, currency),
        "countries": method.countries,
        "active": method.active,
        "position": method.position,
    }
