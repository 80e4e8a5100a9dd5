"""Contact, terms, returns and privacy, each rendered from a template the merchant edits.

The texts live in ``templates/pages/<name>.html``: a shop that forks Storefront rewrites them
there (they name the seller from the settings, so the demo reads as one shop). Nothing here is
per customer, so the pages may be cached by the browser for a while.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template

bp = Blueprint("pages", __name__)

# URL slug -> (template, title). The footer links to each, in this order.
PAGES: dict[str, tuple[str, str]] = {
    "contact": ("pages/contact.html", "Contact us"),
    "terms": ("pages/terms.html", "Terms and conditions"),
    "returns": ("pages/returns.html", "Returns and refunds"),
    "privacy": ("pages/privacy.html", "Privacy"),
}


@bp.get("/<any(contact, terms, returns, privacy):name>")
def page(name: str):
    """One of the shop's pages; any other name is not a route at all (404)."""
    found = PAGES.get(name)
    if found is None:  # pragma: no cover - the route's converter admits only PAGES' names
        abort(404)
    template, title = found
    response = render_template(template, title=title)
    return response, 200, {"Cache-Control": "public, max-age=300"}
