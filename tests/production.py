"""A complete production configuration, for tests that break one thing of it at a time."""

from __future__ import annotations

import secrets


def production(**overrides) -> dict:
    """A complete production configuration; ``overrides`` break one thing at a time."""
    config = {
        "ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": "postgresql://shop:secret@db.example/shop",
        "PROXY_COUNT": "1",
        "PUBLIC_URL": "https://shop.example",
        "SANDBOX": False,
        "SANDBOX_URL": "",
        "GATEWAYS": "rbs,altapay,interpay",
        "RBS_URL": "https://rbs.gateway.example/payment/rest/",
        "RBS_USERNAME": "shop-api",
        "RBS_PASSWORD": "a-real-password",
        "RBS_CALLBACK_KEY": "a-real-callback-key",
        "ALTAPAY_URL": "https://altapay.gateway.example/merchant/API/",
        "ALTAPAY_USERNAME": "shop-api",
        "ALTAPAY_PASSWORD": "a-real-password",
        "ALTAPAY_TERMINAL": "Shop Terminal",
        "ALTAPAY_SECRET": "a-real-shared-secret",
        "INTERPAY_URL": "https://a.interpay.example/svra/ https://b.interpay.example/svrb/",
        "INTERPAY_TERMID": "SHOP0001",
        "INTERPAY_PASS": "a-real-pass",
    }
    config.update(overrides)
    return config
