"""Forms of the catalogue and stock pages. Prices are typed in major units ("12.50") and read
into minor units here, at the edge."""

from __future__ import annotations

import re

from flask import current_app
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # not in types-WTForms 3.2
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from storefront.catalogue.models import StockReason, TaxClass
from storefront.money import from_major

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_STOCK = 1_000_000
SLUG_HINT = "Lower-case letters, digits and single hyphens, such as kenya-nyeri-250-g."


def _stripped(text: str | None) -> str | None:
    # PostgreSQL refuses NUL in a string, and no name holds control characters.
    if text is None:
        return None
    return "".join(c for c in text if c.isprintable() or c in "\n\r\t").strip()


def _check_slug(form, field) -> None:
    if field.data and not SLUG.fullmatch(field.data):
        raise ValidationError(SLUG_HINT)


class ProductForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=200)], filters=[_stripped])
    slug = StringField(
        "Web address (slug)",
        validators=[Optional(), Length(max=120), _check_slug],
        filters=[_stripped, lambda s: s.lower() if s else s],
    )
    description = TextAreaField(
        "Description", validators=[Optional(), Length(max=20_000)], filters=[_stripped]
    )
    price = StringField("Price", validators=[InputRequired(), Length(max=24)])
    category = SelectField("Category", coerce=int, validators=[InputRequired()])
    stock = IntegerField(
        "Stock", default=0, validators=[InputRequired(), NumberRange(min=0, max=MAX_STOCK)]
    )
    tax_class = SelectField(
        "Tax class",
        choices=[SelectChoice(c.value, c.value.capitalize()) for c in TaxClass],
        default=TaxClass.STANDARD.value,
    )
    picture = FileField("Picture (JPEG, PNG or WebP)")
    image_alt = StringField(
        "Picture description (alt text)",
        validators=[Length(max=300)],
        filters=[_stripped],
    )

    def __init__(self, *args, has_picture: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.has_picture = has_picture
        self.minor: int | None = None
        self.price.label.text = f"Price ({current_app.config['CURRENCY']})"

    def validate_price(self, field) -> None:
        currency = current_app.config["CURRENCY"]
        try:
            minor = from_major(field.data, currency)
        except ValueError as exc:
            raise ValidationError(
                f"Type the price in {currency} as a plain number, such as 12.50."
            ) from exc
        if minor <= 0:
            raise ValidationError("The price must be more than zero.")
        self.minor = minor

    def validate_image_alt(self, field) -> None:
        uploading = bool(self.picture.data and getattr(self.picture.data, "filename", ""))
        if (uploading or self.has_picture) and not field.data:
            raise ValidationError(
                "Describe the picture for people who cannot see it, such as "
                "“A blue coffee bag with a white label”."
            )


class StockForm(FlaskForm):
    """A change of stock with its reason; sales and releases are written by the shop itself."""

    delta = IntegerField(
        "Change (e.g. 12 or -3)",
        validators=[InputRequired(), NumberRange(min=-MAX_STOCK, max=MAX_STOCK)],
    )
    reason = SelectField(
        "Reason",
        choices=[
            SelectChoice(
                StockReason.MANUAL.value, "Manual adjustment (counted, delivered, damaged)"
            ),
            SelectChoice(StockReason.REFUND_RESTOCK.value, "Refund restock (goods came back)"),
        ],
    )
    order = StringField("Order number (for a refund restock)", validators=[Length(max=16)])
    note = StringField("Note", validators=[InputRequired(), Length(max=300)], filters=[_stripped])

    def validate_delta(self, field) -> None:
        if field.data == 0:
            raise ValidationError("A change of zero changes nothing.")

    def validate_order(self, field) -> None:
        if field.data and not field.data.strip().isdigit():
            raise ValidationError("An order number is digits only.")
        if self.reason.data == StockReason.REFUND_RESTOCK and not field.data:
            raise ValidationError("Give the order the goods came back from.")


class CategoryForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=120)], filters=[_stripped])
    slug = StringField(
        "Web address (slug)",
        validators=[Optional(), Length(max=80), _check_slug],
        filters=[_stripped, lambda s: s.lower() if s else s],
    )
    description = TextAreaField(
        "Description", validators=[Optional(), Length(max=5_000)], filters=[_stripped]
    )
    position = IntegerField(
        "Position in the menu", default=0, validators=[InputRequired(), NumberRange(0, 10_000)]
    )
    parent = SelectField("Inside category", coerce=int, default=0)
