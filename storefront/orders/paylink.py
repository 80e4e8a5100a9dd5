"""The "pay now" link of a payment-failed mail: signed for one order, and expiring.

The link is ``/order/<number>/pay-now?token=…``, the token the order's number signed with the
shop's ``SECRET_KEY`` under a salt of its own (so that no other signed value of the shop, such
as the session cookie, can stand in for it) and timed: it is refused after
``STOREFRONT_PAY_LINK_MAX_AGE_HOURS``. It opens the order's payment and nothing else; the
receipt token stays the key of the order's page.
"""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "storefront.orders.pay-link"


class LinkExpired(Exception):
    """The link was ours and for this order, but it is older than the setting allows."""


class LinkInvalid(Exception):
    """The link was not signed by this shop, or it is for another order."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def token_for(number: str) -> str:
    """The token of the "pay now" link of order ``number``."""
    return _serializer().dumps(number)


def check(token: str, number: str) -> None:
    """:raise LinkExpired: the token is ours and for ``number``, but too old.
    :raise LinkInvalid: the token is not ours, or names another order."""
    max_age = round(float(current_app.config["PAY_LINK_MAX_AGE_HOURS"]) * 3600)  # seconds
    try:
        signed = _serializer().loads(token, max_age=max_age)
    except SignatureExpired as expired:
        # The signature is good, so the payload can be read: an old link to another order is
        # still a link to another order.
        if expired.payload is not None and _serializer().load_payload(expired.payload) != number:
            raise LinkInvalid from expired
        raise LinkExpired from expired
    except BadSignature as bad:
        raise LinkInvalid from bad
    if signed != number:
        raise LinkInvalid
