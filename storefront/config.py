"""Configuration: defaults, then ``STOREFRONT_*`` environment variables, then a test mapping.

Left unset, every gateway points at the sandbox gateway with the sandbox's own demo credentials,
so ``make run`` needs nothing. In production (``STOREFRONT_ENV=production``) the application
refuses to start with a default secret, a sandbox URL or an empty callback secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from storefront.money import UnsupportedCurrency, currency_info

# Demo credentials of the bundled sandbox gateway. They are not secrets: the sandbox accepts them
# on loopback only for demo purposes, and production refuses to run with them (see ``check``).
SANDBOX_CREDENTIALS = {
    "RBS_USERNAME": "sandbox-merchant",
    "RBS_PASSWORD": "sandbox-password",
    "RBS_CALLBACK_KEY": "sandbox-callback-key",
    "ALTAPAY_USERNAME": "sandbox-api",
    "ALTAPAY_PASSWORD": "sandbox-password",
    "ALTAPAY_TERMINAL": "Storefront Sandbox Terminal",
    "ALTAPAY_SECRET": "sandbox-shared-secret",
    "INTERPAY_TERMID": "SANDBX01",
    "INTERPAY_PASS": "sandbox-pass",
}
DEV_SECRET_KEY = "storefront-development-key-not-for-production"  # noqa: S105 - refused in production

BOOLEAN_KEYS = {
    "RBS_TWO_PHASE",
    "INTERPAY_ACK",
    "INTERPAY_ACK_IN_GETRESULT",
    "SANDBOX",
    "ALTAPAY_CAPTURE",
    "ALTAPAY_PAYMENT_PAGE",
    "RATELIMIT_ENABLED",
}
NUMBER_KEYS = {
    "GATEWAY_CONNECT_TIMEOUT",
    "GATEWAY_READ_TIMEOUT",
    "ORDERS_PER_PAGE",
    "ORDER_PAYMENT_WINDOW",
    "STATUS_RECHECK_SECONDS",
    "PROXY_COUNT",
    "MAIL_CLAIM_TIMEOUT",
    "ADMIN_SIGN_IN_LIMIT",
    "ADMIN_SIGN_IN_IP_LIMIT",
    "ADMIN_SIGN_IN_WINDOW",
    "ADMIN_SESSION_HOURS",
    "ADMIN_ORDERS_PER_PAGE",
}


class ConfigError(RuntimeError):
    """The configuration cannot run a shop; the message says which setting and why."""


def defaults(instance_path: str) -> dict:
    return {
        "ENV": "development",
        "SECRET_KEY": DEV_SECRET_KEY,
        "DATABASE_URL": "sqlite:///" + str(Path(instance_path) / "storefront.db"),
        "PUBLIC_URL": "http://127.0.0.1:5000",
        "SHOP_NAME": "Storefront",
        "CURRENCY": "EUR",
        "LOCALE": "en_IE",
        "GATEWAYS": "rbs,altapay,interpay",
        # The sandbox gateway mounted under /sandbox of this same process (see app.py).
        "SANDBOX": True,
        "SANDBOX_URL": "",
        "RBS_URL": "",
        "RBS_TWO_PHASE": False,
        "ALTAPAY_URL": "",
        "ALTAPAY_CAPTURE": False,
        # Send config[callback_form]: AltaPay shows its card fields inside our own page.
        "ALTAPAY_PAYMENT_PAGE": True,
        "INTERPAY_URL": "",
        # Confirm each approval with Ack (the gateway reverses unacknowledged ones after 3 min);
        # or in the GetResult call itself; "json" or the legacy "legacy" name=value encoding.
        "INTERPAY_ACK": True,
        "INTERPAY_ACK_IN_GETRESULT": False,
        "INTERPAY_ENCODING": "json",
        # InterPay has no currency field: its terminal's currency ("" = the shop's currency; a
        # real terminal is usually CAD) must be the shop's, or InterPay cannot be offered.
        "INTERPAY_CURRENCY": "",
        **SANDBOX_CREDENTIALS,
        # Outbound calls: connect and read timeouts in seconds, on every gateway call.
        "GATEWAY_CONNECT_TIMEOUT": 5.0,
        "GATEWAY_READ_TIMEOUT": 20.0,
        "ORDERS_PER_PAGE": 12,
        # How long an unpaid order keeps its reserved stock, in seconds.
        "ORDER_PAYMENT_WINDOW": 3600,
        # A pending page asks the gateway again at most this often per payment, in seconds.
        "STATUS_RECHECK_SECONDS": 5,
        "MAIL_URL": "",
        "MAIL_FROM": "shop@storefront.invalid",
        # A mail claimed by a process that died while sending is taken over after this long.
        "MAIL_CLAIM_TIMEOUT": 300,
        # How many reverse proxies in front of the shop to trust for X-Forwarded-* headers.
        "PROXY_COUNT": 0,
        "RATELIMIT_ENABLED": True,
        # No form or callback of ours comes near this; a bigger body is refused (413) unread.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
    }


def _parse(key: str, raw: str):
    if key in BOOLEAN_KEYS:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if key in NUMBER_KEYS:
        try:
            return float(raw)
        except ValueError as exc:
            raise ConfigError(f"STOREFRONT_{key} must be a number, not {raw!r}") from exc
    return raw


def load(instance_path: str, environ: Mapping[str, str], overrides: Mapping | None) -> dict:
    """Build the configuration: defaults, then ``STOREFRONT_*`` variables, then ``overrides``."""
    config = defaults(instance_path)
    for name, raw in environ.items():
        if name.startswith("STOREFRONT_"):
            key = name.removeprefix("STOREFRONT_")
            config[key] = _parse(key, raw)
    config.update(overrides or {})
    return finish(config)


def finish(config: dict) -> dict:
    """Derive what follows from the settings, then check that they can run a shop."""
    config["PUBLIC_URL"] = config["PUBLIC_URL"].rstrip("/")
    config["GATEWAYS"] = [g.strip() for g in str(config["GATEWAYS"]).split(",") if g.strip()]
    sandbox = (config["SANDBOX_URL"] or config["PUBLIC_URL"] + "/sandbox").rstrip("/")
    config["SANDBOX_URL"] = sandbox
    config["RBS_URL"] = config["RBS_URL"] or f"{sandbox}/rbs/payment/rest/"
    config["ALTAPAY_URL"] = config["ALTAPAY_URL"] or f"{sandbox}/altapay/merchant/API/"
    config["INTERPAY_URL"] = (
        config["INTERPAY_URL"] or f"{sandbox}/interpay/svra/ {sandbox}/interpay/svrb/"
    )
    config["INTERPAY_CURRENCY"] = (config["INTERPAY_CURRENCY"] or config["CURRENCY"]).upper()
    config["SQLALCHEMY_DATABASE_URI"] = _sqlalchemy_url(config["DATABASE_URL"])
    config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(config["SQLALCHEMY_DATABASE_URI"])
    https = config["PUBLIC_URL"].startswith("https://")
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_SECURE"] = https
    config["PREFERRED_URL_SCHEME"] = "https" if https else "http"
    config["WTF_CSRF_TIME_LIMIT"] = None  # a checkout form left open over lunch still works
    check(config)
    return config


def _sqlalchemy_url(url: str) -> str:
    # Hosting platforms hand out postgres:// URLs; SQLAlchemy wants the driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        # Threads of one process share the file; wait for a writer instead of failing at once.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def gateway_origins(config: Mapping) -> list[str]:
    """The origins the browser may be sent to at checkout (for the CSP ``form-action``): those
    of the gateways offered (``GATEWAYS``), not of any other URL left in the settings."""
    urls = {
        "rbs": [config["RBS_URL"]],
        "altapay": [config["ALTAPAY_URL"]],
        "interpay": config["INTERPAY_URL"].split(),
    }
    return sorted({_origin(u) for g in config["GATEWAYS"] for u in urls[g] if u})


def check(config: Mapping) -> None:
    """Refuse configurations that would lose or misroute money. Raises :class:`ConfigError`."""
    try:
        currency_info(config["CURRENCY"])
    except UnsupportedCurrency as exc:
        raise ConfigError(f"STOREFRONT_CURRENCY: {exc}") from exc
    if not urlsplit(config["PUBLIC_URL"]).netloc:
        raise ConfigError(
            "STOREFRONT_PUBLIC_URL must be an absolute URL such as https://shop.example"
        )
    unknown = set(config["GATEWAYS"]) - {"rbs", "altapay", "interpay"}
    if unknown or not config["GATEWAYS"]:
        raise ConfigError(f"STOREFRONT_GATEWAYS must list rbs, altapay or interpay, not {unknown}")
    if "interpay" in config["GATEWAYS"] and config["INTERPAY_CURRENCY"] != config["CURRENCY"]:
        raise ConfigError(
            f"InterPay's terminal charges {config['INTERPAY_CURRENCY']} but the shop sells in "
            f"{config['CURRENCY']}: take interpay out of STOREFRONT_GATEWAYS or use a terminal "
            "in the shop's currency (STOREFRONT_INTERPAY_CURRENCY)"
        )
    if config["ENV"] != "production":
        return
    problems = []
    if config["SECRET_KEY"] in ("", DEV_SECRET_KEY) or len(config["SECRET_KEY"]) < 32:
        problems.append("STOREFRONT_SECRET_KEY must be set to a random value of 32+ characters")
    if not config["PUBLIC_URL"].startswith("https://"):
        problems.append("STOREFRONT_PUBLIC_URL must be https")
    if config["SANDBOX"]:
        problems.append("STOREFRONT_SANDBOX must be off")
    sandbox = config["SANDBOX_URL"]
    secrets_for = {
        "rbs": ("RBS_URL", "RBS_USERNAME", "RBS_PASSWORD", "RBS_CALLBACK_KEY"),
        "altapay": ("ALTAPAY_URL", "ALTAPAY_USERNAME", "ALTAPAY_PASSWORD", "ALTAPAY_SECRET"),
        "interpay": ("INTERPAY_URL", "INTERPAY_TERMID", "INTERPAY_PASS"),
    }
    for gateway in config["GATEWAYS"]:
        url_key, *secret_keys = secrets_for[gateway]
        if sandbox in config[url_key] or "/sandbox/" in config[url_key]:
            problems.append(f"STOREFRONT_{url_key} points at the sandbox gateway")
        for key in secret_keys:
            if not config[key] or config[key] == SANDBOX_CREDENTIALS.get(key):
                problems.append(f"STOREFRONT_{key} must be set (the sandbox's value is refused)")
    if problems:
        raise ConfigError("refusing to start in production:\n  - " + "\n  - ".join(problems))
