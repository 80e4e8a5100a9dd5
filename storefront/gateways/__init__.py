"""The gateways this shop speaks: the one registry of their names, and the adapters built once
per application from its configuration.

A new gateway family is one module with a :class:`~storefront.gateways.base.Gateway` subclass,
listed in ``REGISTRY``; settings, checkout, callbacks and the reconciler find it there.
"""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext

from storefront.gateways.altapay import AltaPayGateway
from storefront.gateways.base import Gateway
from storefront.gateways.interpay import InterPayGateway
from storefront.gateways.rbs import RbsGateway

REGISTRY: dict[str, type[Gateway]] = {
    family.name: family for family in (RbsGateway, AltaPayGateway, InterPayGateway)
}


def get_gateway(name: str) -> Gateway:
    """The adapter for ``name`` (one of the configured ``STOREFRONT_GATEWAYS``).

    :raise KeyError: the gateway is not configured for this shop.
    """
    if name not in current_app.config["GATEWAYS"]:
        raise KeyError(name)
    adapters = current_app.extensions.setdefault("gateways", {})
    if name not in adapters:
        adapters[name] = REGISTRY[name].from_config(current_app.config)
    return adapters[name]


def configured(name: str) -> Gateway | None:
    """The adapter for ``name`` if this shop configures it, else None (an old order may name a
    gateway the shop no longer offers)."""
    try:
        return get_gateway(name)
    except KeyError:
        return None


def method_name(gateway: Gateway) -> str:
    """What checkout calls the gateway's payment method ("Card", "Card or MobilePay"): the
    customer chooses how to pay, not which processor; its name is only in the small print.
    The default name is in the customer's language; a name the merchant set is shown as set."""
    name = current_app.config[f"{gateway.name.upper()}_METHOD_NAME"]
    return gettext("Card") if name == "Card" else name


def offered() -> list[Gateway]:
    """The gateways offered at checkout, in the configured order."""
    return [get_gateway(name) for name in current_app.config["GATEWAYS"]]
