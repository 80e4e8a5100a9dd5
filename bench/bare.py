"""The yardstick: a bare Flask app rendering one Jinja page, with no database and no extensions.

The page is a list of 12 products with a header, a category menu and a footer, about the size
of the shop's category page; ``python -m bench`` serves it under the Procfile's gunicorn
settings (``gunicorn bench.bare:app``) and measures it like the shop's pages, so each page's
throughput can be given as a fraction of what Flask, Jinja and gunicorn alone manage here.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, render_template

app = Flask(__name__, template_folder=str(Path(__file__).resolve().parent / "templates"))

CATEGORIES = [("coffee", "Coffee"), ("tea", "Tea"), ("brewing-gear", "Brewing gear")]
PRODUCTS = [
    {
        "slug": f"house-espresso-blend-no-{n}",
        "name": f"House Espresso Blend No. {n}",
        "image": "house-espresso.svg",
        "price": f"€{12 + n}.50",
        "stock": "In stock" if n % 4 else "Only 3 left",
    }
    for n in range(1, 13)
]


@app.get("/")
def listing():
    """Twelve products rendered from a template, nothing else."""
    return render_template("bare.html", categories=CATEGORIES, products=PRODUCTS)
