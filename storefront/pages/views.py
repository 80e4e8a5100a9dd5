"""Contact, terms, returns and privacy, each rendered from a template the merchant edits.

The texts live in ``templates/pages/<name>.html``: a shop that forks Storefront rewrites them
there (they name the seller from the settings, so the demo reads as one shop). Nothing here is
per customer but the language, so the pages may be cached by the browser for a while (``Vary``
names the session cookie and ``Accept-Language``, which choose the language).
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_babel import lazy_gettext as _l

bp = Blueprint("pages", __name__)

# URL slug -> (template, title). The footer links to each, in this order.
PAGES: dict[str, tuple[str, object]] = {
    "contact": ("pages/contact.html", _l("Contact us")),
    "terms": ("pages/terms.html", _l("Terms and conditions")),
    "returns": ("pages/returns.html", _l("Returns and refunds")),
    "privacy": ("pages/privacy.html", _l("Privacy")),
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
