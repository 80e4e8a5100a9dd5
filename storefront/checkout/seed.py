"""The demo's delivery methods, loaded by ``flask seed`` into a shop that has none."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func

from storefront.checkout.models import DeliveryMethod
from storefront.extensions import db
from storefront.money import currency_info

EU = "AT,BE,BG,CY,CZ,DE,DK,EE,ES,FI,FR,GR,HR,HU,IE,IT,LT,LU,LV,MT,NL,PL,PT,RO,SE,SI,SK"

# name, price in cents, free over (cents, or None), countries served
DEMO = (
    ("Standard post", 495, 5000, "IE,GB"),
    ("Express courier", 995, None, "IE,GB"),
    ("EU post", 1295, 15000, EU),
)


def seed_delivery_methods() -> int:
    """Load the demo's delivery methods if there are none; return how many were created."""
    if db.session.execute(db.select(func.count()).select_from(DeliveryMethod)).scalar_one():
        return 0
    # As the catalogue's seed: a currency with three minor units gets a trailing zero.
    scale = 10 ** max(currency_info(current_app.config["CURRENCY"]).exponent - 2, 0)
    db.session.add_all(
        DeliveryMethod(
            name=name,
            price=cents * scale,
            free_over=None if free is None else free * scale,
            countries=countries,
            position=position,
        )
        for position, (name, cents, free, countries) in enumerate(DEMO, start=1)
    )
    db.session.commit()
    return len(DEMO)
