"""The demo catalogue: a small coffee and tea shop, loaded by ``flask seed`` into an empty shop.

Prices are written in the cents of a two-decimal currency and converted to the shop's currency
exponent, so a JPY shop sells a bag of coffee for ¥1,250 rather than ¥13. The pictures are
flat SVG illustrations kept in ``static/img/products/``.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import cycle, islice
from typing import NamedTuple

from flask import current_app
from sqlalchemy import func

from storefront.catalogue.models import Category, Product
from storefront.extensions import db
from storefront.money import currency_info


class DemoProduct(NamedTuple):
    category: str  # the category's slug
    name: str
    cents: int  # the price in cents of a two-decimal currency
    stock: int
    image: str  # a file in static/img/products/
    alt: str
    description: str


CATEGORIES = [
    ("coffee", "Coffee", "Whole-bean coffee roasted every Tuesday in small batches."),
    ("tea", "Tea", "Loose-leaf tea from single gardens, packed in resealable tins."),
    ("brewing-gear", "Brewing gear", "Drippers, kettles and grinders we use ourselves."),
]

PRODUCTS = [
    DemoProduct(
        "coffee",
        "Ethiopia Yirgacheffe, 250 g",
        cents=1250,
        stock=40,
        image="ethiopia-yirgacheffe.svg",
        alt="A blue coffee bag with a white label showing a blue flower, coffee beans beside it.",
        description=(
            "Washed heirloom varieties from smallholders around Yirgacheffe. Light roast with "
            "notes of jasmine, bergamot and lemon curd.\n\nBest as pour-over or filter. Whole "
            "beans."
        ),
    ),
    DemoProduct(
        "coffee",
        "Colombia Huila, 250 g",
        cents=1100,
        stock=25,
        image="colombia-huila.svg",
        alt="A rust-red coffee bag with a label showing green mountains, coffee beans beside it.",
        description=(
            "Grown at 1,700 metres in the south of Huila. Medium roast: red apple, panela and "
            "milk chocolate.\n\nA forgiving coffee for every brewer. Whole beans."
        ),
    ),
    DemoProduct(
        "coffee",
        "House Espresso Blend, 1 kg",
        cents=3400,
        stock=12,
        image="house-espresso.svg",
        alt="A black coffee bag with a cream label showing a red coffee bean.",
        description=(
            "Brazil and Guatemala, roasted a little darker for a sweet, heavy espresso with "
            "hazelnut and cocoa that stands up to milk.\n\nThe blend we pour at our own "
            "counter. Whole beans."
        ),
    ),
    DemoProduct(
        "coffee",
        "Kenya AA Nyeri, 250 g",
        cents=1490,
        stock=3,
        image="kenya-nyeri.svg",
        alt="A red coffee bag with a label showing an orange sun, coffee beans beside it.",
        description=(
            "SL28 and SL34 from the Gatomboya cooperative. Bright and juicy: blackcurrant, "
            "grapefruit and cane sugar.\n\nA small lot; once it is gone, it is gone."
        ),
    ),
    DemoProduct(
        "coffee",
        "Peru Decaf, Swiss Water, 250 g",
        cents=1200,
        stock=0,
        image="peru-decaf.svg",
        alt="A green coffee bag with a label showing a pale green leaf, coffee beans beside it.",
        description=(
            "Decaffeinated with water alone, no solvents. Caramel, almond and a soft, round "
            "body for an evening cup.\n\nWhole beans."
        ),
    ),
    DemoProduct(
        "tea",
        "Sencha Kagoshima, 100 g",
        cents=950,
        stock=30,
        image="sencha.svg",
        alt="A green tea tin with a cream band showing a green tea leaf.",
        description=(
            "A deep-steamed green tea from southern Japan: grassy, sweet and brothy.\n\nBrew at "
            "70 °C for one minute; good for three infusions."
        ),
    ),
    DemoProduct(
        "tea",
        "Assam Breakfast, 250 g",
        cents=780,
        stock=50,
        image="assam.svg",
        alt="A dark red tea tin with a cream band showing an orange teacup.",
        description=(
            "Malty second-flush Assam, rolled into small leaves for a strong, brisk cup that "
            "takes milk well.\n\nBrew at 95 °C for four minutes."
        ),
    ),
    DemoProduct(
        "tea",
        "Darjeeling First Flush, 100 g",
        cents=1600,
        stock=1,
        image="darjeeling.svg",
        alt="A teal tea tin with a cream band showing a lime green tea leaf.",
        description=(
            "The spring picking from a single estate near Kurseong: floral, muscatel and "
            "light.\n\nBrew at 85 °C for three minutes. The last tin of this season."
        ),
    ),
    DemoProduct(
        "tea",
        "Rooibos Vanilla, 150 g",
        cents=690,
        stock=22,
        image="rooibos.svg",
        alt="An orange tea tin with a cream band showing an orange flower.",
        description=(
            "South African rooibos with Madagascan vanilla pieces. Naturally caffeine-free and "
            "sweet enough without sugar.\n\nBrew with boiling water for five minutes or longer."
        ),
    ),
    DemoProduct(
        "tea",
        "Jasmine Silver Needle, 50 g",
        cents=1850,
        stock=8,
        image="silver-needle.svg",
        alt="A pale silver tea tin with a white band showing three long green tea buds.",
        description=(
            "White tea buds from Fujian, scented over several nights with fresh jasmine "
            "blossom.\n\nBrew at 80 °C for three minutes."
        ),
    ),
    DemoProduct(
        "brewing-gear",
        "Ceramic Pour-over Dripper",
        cents=2400,
        stock=15,
        image="dripper.svg",
        alt="A white cone-shaped ceramic dripper resting on a dark blue mug, with steam rising.",
        description=(
            "Glazed porcelain holds heat evenly; the spiral ribs let the coffee flow at a "
            "steady rate.\n\nFits size 02 paper filters and most mugs and carafes."
        ),
    ),
    DemoProduct(
        "brewing-gear",
        "Gooseneck Kettle, 1 L",
        cents=5900,
        stock=6,
        image="kettle.svg",
        alt="A matt black kettle with a long, thin gooseneck spout and a copper-coloured handle.",
        description=(
            "A slim spout for a slow, precise pour. Stainless steel; works on gas, electric and "
            "induction hobs."
        ),
    ),
    DemoProduct(
        "brewing-gear",
        "Hand Burr Grinder",
        cents=7900,
        stock=4,
        image="grinder.svg",
        alt="A wooden hand grinder with a metal crank handle, coffee beans beside it.",
        description=(
            "Conical steel burrs with 30 click settings, from espresso to French press. Grinds "
            "20 g for a cup in under a minute."
        ),
    ),
    DemoProduct(
        "brewing-gear",
        "Glass Teapot with Infuser, 800 ml",
        cents=2900,
        stock=10,
        image="teapot.svg",
        alt="A clear glass teapot half full of amber tea, with a steel infuser basket inside.",
        description=(
            "Heat-resistant borosilicate glass with a fine stainless infuser you can lift out "
            "when the tea is ready. Dishwasher safe."
        ),
    ),
    DemoProduct(
        "brewing-gear",
        "Paper Filters, size 02, 100 pack",
        cents=550,
        stock=120,
        image="filters.svg",
        alt="A stack of three white paper coffee filters.",
        description=(
            "Unbleached, oxygen-whitened paper filters for cone drippers. Rinse once with hot "
            "water before brewing."
        ),
    ),
]

# Extra products for benchmarks: names made from these parts, pictures reused from above.
_ORIGINS = {
    "coffee": [
        "Brazil Cerrado",
        "Guatemala Huehuetenango",
        "Rwanda Nyamasheke",
        "Sumatra Aceh",
        "Costa Rica Tarrazú",
        "Honduras Marcala",
        "Burundi Kayanza",
    ],
    "tea": [
        "Yunnan Dian Hong",
        "Uji Gyokuro",
        "Nilgiri Frost",
        "Ceylon Uva",
        "Taiwan Oolong",
        "Anhui Keemun",
        "Nepal Ilam",
    ],
}
_STYLES = ["Reserve", "Estate Lot", "Micro-lot", "Harvest Selection", "Single Garden"]


def seed_demo_catalogue(extra_products: int = 0) -> int:
    """Load the demo catalogue if the shop has no products yet; return how many were created."""
    if db.session.execute(db.select(func.count()).select_from(Product)).scalar_one():
        return 0
    # A currency without minor units (JPY, ISK) counts the cents as whole units; one with three
    # (KWD) gets a trailing zero.
    scale = 10 ** max(currency_info(current_app.config["CURRENCY"]).exponent - 2, 0)
    categories = {}
    for position, (slug, name, description) in enumerate(CATEGORIES, start=1):
        categories[slug] = Category(
            slug=slug, name=name, description=description, position=position
        )
    db.session.add_all(categories.values())
    products = [
        Product(
            slug=slugify(demo.name),
            name=demo.name,
            description=demo.description,
            price=demo.cents * scale,
            stock=demo.stock,
            image=demo.image,
            image_alt=demo.alt,
            category=categories[demo.category],
        )
        for demo in PRODUCTS
    ]
    products += _generated(extra_products, categories, scale)
    db.session.add_all(products)
    db.session.commit()
    return len(products)


def slugify(text: str) -> str:
    """'Costa Rica Tarrazú, 250 g' -> 'costa-rica-tarrazu-250-g'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _generated(count: int, categories: dict[str, Category], scale: int) -> list[Product]:
    templates = islice(cycle(PRODUCTS[:10]), count)
    products = []
    for number, demo in enumerate(templates, start=1):
        origins = _ORIGINS[demo.category]
        origin = origins[number % len(origins)]
        style = _STYLES[number % len(_STYLES)]
        name = f"{origin} {style} No. {number}"
        products.append(
            Product(
                slug=slugify(name),
                name=name,
                description=demo.description,
                price=(demo.cents + 10 * (number % 40)) * scale,
                stock=number % 60,
                image=demo.image,
                image_alt=demo.alt,
                category=categories[demo.category],
            )
        )
    return products
