"""The gateways this shop speaks, built once per application from its configuration."""

from __future__ import annotations

import importlib

from flask import current_app

from storefront.gateways.base import Gateway

FAMILIES = ("rbs", "altapay", "interpay")


def get_gateway(name: str) -> Gateway:
    """The adapter for ``name`` (one of the configured ``STOREFRONT_GATEWAYS``).

    :raise KeyError: the gateway is not configured for this shop.
    """
    if name not in current_app.config["GATEWAYS"]:
        raise KeyError(name)
    adapters = current_app.extensions.setdefault("gateways", {})
    if name not in adapters:
        module = importlib.import_module(f"storefront.gateways.{name}")
        adapters[name] = module.from_config(current_app.config)
    return adapters[name]


def offered() -> list[Gateway]:
    """The gateways offered at checkout, in the configured order."""
    return [get_gateway(name) for name in current_app.config["GATEWAYS"]]
