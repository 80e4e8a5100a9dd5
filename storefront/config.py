"""Configuration: one typed table of settings, read from ``STOREFRONT_*`` environment variables.

Every setting the shop reads is declared once in ``SETTINGS``, with its type and default: the
environment's text is parsed by that type, a test's overrides are checked by it, and a value
that does not parse stops the start with the setting's name. Left unset, every gateway points
at the sandbox gateway with the sandbox's own demo credentials, so ``make run`` needs nothing.
In production (``STOREFRONT_ENV=production``) the shop refuses to start with anything that
would lose or misroute money (see :func:`check`).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError

from storefront.gateways import REGISTRY
from storefront.money import UnsupportedCurrency, currency_info

DEV_SECRET_KEY = "storefront-development-key-not-for-production"  # noqa: S105 - refused in production
ENVIRONMENTS = ("development", "production")


class ConfigError(RuntimeError):
    """The configuration cannot run a shop; the message says which setting and why."""


# Types: each turns the environment's text (or a test's value) into the setting's value --------
def text(value: Any) -> str:
    return str(value).strip()


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not on or off")


def number(value: Any) -> float:
    result = float(value)
    if not math.isfinite(result) or result < 0:
        raise ValueError(f"{value!r} is not a number of zero or more")
    return result


def whole(value: Any) -> int:
    result = number(value)
    if result != int(result):
        raise ValueError(f"{value!r} is not a whole number")
    return int(result)


def optional_whole(value: Any) -> int | None:
    return None if value is None or str(value).strip() == "" else whole(value)


def waits(value: Any) -> list[float]:
    """Seconds, comma separated, at least one: a back-off list such as ``60,300,3600``."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    result = [number(item) for item in items if str(item).strip()]
    if not result or min(result) <= 0:
        raise ValueError(f"{value!r} is not a list of waits in seconds, each above 0")
    return result


def names(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [str(item).strip().lower() for item in items if str(item).strip()]


def rates(value: Any) -> dict[str, int]:
    """VAT rates in hundredths of a percent by tax class: ``standard:2300,reduced:1350,zero:0``."""
    pairs: list[tuple[Any, ...]]
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        pairs = [tuple(item.split(":", 1)) for item in str(value).split(",") if item.strip()]
    result = {}
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"{value!r} is not a list of class:rate pairs")
        result[str(pair[0]).strip().lower()] = whole(pair[1])
    if "standard" not in result:
        raise ValueError(f"{value!r} has no standard rate")
    return result


def codes(value: Any) -> dict[int, int]:
    """A gateway's code per VAT rate, ``rate:code`` comma separated, the rate in hundredths of
    a percent: ``0:1,1000:2,2000:6``."""
    pairs: list[tuple[Any, ...]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = [tuple(item.split(":", 1)) for item in str(value).split(",") if item.strip()]
    result = {}
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"{value!r} is not a list of rate:code pairs")
        result[whole(pair[0])] = whole(pair[1])
    return result


def locales(value: Any) -> list[str]:
    """Language codes, comma separated, as Babel writes them: ``en,de,ru`` or ``pt_BR``."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    try:
        result = [
            str(Locale.parse(str(item).strip().replace("-", "_")))
            for item in items
            if str(item).strip()
        ]
    except UnknownLocaleError as exc:
        raise ValueError(f"{value!r}: {exc}") from exc
    if not result:
        raise ValueError(f"{value!r} names no language")
    return result


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        word = str(value).strip().lower()
        if word not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return word

    return parse


@dataclass(frozen=True)
class Setting:
    parse: Callable[[Any], Any]
    default: Any
    # For a gateway URL left empty: the path of that protocol on the mounted sandbox.
    sandbox_path: str = ""


# Every setting, its type and its default. The README's table lists the same names.
SETTINGS: dict[str, Setting] = {
    "ENV": Setting(choice(*ENVIRONMENTS), "development"),
    "SECRET_KEY": Setting(text, DEV_SECRET_KEY),
    "DATABASE_URL": Setting(text, ""),  # "" = SQLite in the instance folder
    "PUBLIC_URL": Setting(text, "http://127.0.0.1:5000"),
    "SHOP_NAME": Setting(text, "Storefront"),
    "CURRENCY": Setting(lambda v: text(v).upper(), "EUR"),
    "LOCALE": Setting(text, "en_IE"),
    # The languages the shop speaks (each with a catalogue in storefront/translations/, English
    # being the source), and the one for a browser that asks for none of them.
    "LOCALES": Setting(locales, "en,de,ru"),
    "DEFAULT_LOCALE": Setting(text, "en"),
    "SHOP_COUNTRY": Setting(lambda v: text(v).upper(), "IE"),
    # Hundredths of a percent per tax class, for the shop's country (Ireland's by default).
    "VAT_RATES": Setting(rates, "standard:2300,reduced:1350,zero:0"),
    "SELLER_NAME": Setting(text, "Storefront Ltd"),
    "SELLER_ADDRESS": Setting(text, "1 Demo Street, Dublin D01 X2Y3, Ireland"),
    "SELLER_VAT_NUMBER": Setting(text, "IE1234567T"),
    "GATEWAYS": Setting(names, "rbs,altapay,interpay"),
    # The sandbox gateway, mounted under /sandbox of this same process (see app.py).
    "SANDBOX": Setting(boolean, True),
    "SANDBOX_URL": Setting(text, ""),  # "" = PUBLIC_URL + /sandbox
    # BPC/RBS. The defaults are the sandbox's demo account: not secrets, refused in production.
    "RBS_URL": Setting(text, "", sandbox_path="/rbs/payment/rest/"),
    "RBS_USERNAME": Setting(text, "sandbox-merchant"),
    "RBS_PASSWORD": Setting(text, "sandbox-password"),
    "RBS_CALLBACK_KEY": Setting(text, "sandbox-callback-key"),
    "RBS_TWO_PHASE": Setting(boolean, False),
    "RBS_METHOD_NAME": Setting(text, "Card"),
    # Send the basket (orderBundle) with register.do; off for acquirers that refuse it.
    "RBS_BASKET": Setting(boolean, True),
    # The protocol's taxType per VAT rate (hundredths of a percent): the fiscal codes of the
    # Russian deployments (0 % → 1, 10 % → 2, 18 % → 3, 20 % → 6). A rate without a code is sent
    # with its VAT (taxSum) and no taxType; an acquirer with codes of its own lists them here.
    "RBS_TAX_TYPES": Setting(codes, "0:1,1000:2,1800:3,2000:6"),
    # AltaPay
    "ALTAPAY_URL": Setting(text, "", sandbox_path="/altapay/merchant/API/"),
    "ALTAPAY_USERNAME": Setting(text, "sandbox-api"),
    "ALTAPAY_PASSWORD": Setting(text, "sandbox-password"),
    "ALTAPAY_TERMINAL": Setting(text, "Storefront Sandbox Terminal"),
    "ALTAPAY_SECRET": Setting(text, "sandbox-shared-secret"),
    "ALTAPAY_CAPTURE": Setting(boolean, False),
    "ALTAPAY_METHOD_NAME": Setting(text, "Card"),
    # Send the basket (orderLines) with createPaymentRequest.
    "ALTAPAY_BASKET": Setting(boolean, True),
    # Capture a held payment when the order is marked dispatched in the admin.
    "CAPTURE_ON_DISPATCH": Setting(boolean, False),
    # Send config[callback_form]: AltaPay shows its card fields inside our own page.
    "ALTAPAY_PAYMENT_PAGE": Setting(boolean, True),
    # InterPay: one server URL, or the main and the backup one separated by a space.
    "INTERPAY_URL": Setting(text, "", sandbox_path="/interpay/svra/ /interpay/svrb/"),
    "INTERPAY_TERMID": Setting(text, "SANDBX01"),
    "INTERPAY_PASS": Setting(text, "sandbox-pass"),
    "INTERPAY_METHOD_NAME": Setting(text, "Card"),
    # Confirm each approval with Ack (the gateway reverses unacknowledged ones after 3 min),
    # or in the GetResult call itself; "json" or the legacy name=value encoding.
    "INTERPAY_ACK": Setting(boolean, True),
    "INTERPAY_ACK_IN_GETRESULT": Setting(boolean, False),
    "INTERPAY_ENCODING": Setting(choice("json", "legacy"), "json"),
    # InterPay has no currency field: its terminal's currency ("" = the shop's) must be the
    # shop's, or InterPay cannot be offered.
    "INTERPAY_CURRENCY": Setting(lambda v: text(v).upper(), ""),
    # Outbound calls: connect and read timeouts in seconds, on every gateway call.
    "GATEWAY_CONNECT_TIMEOUT": Setting(number, 5.0),
    "GATEWAY_READ_TIMEOUT": Setting(number, 20.0),
    "PRODUCTS_PER_PAGE": Setting(whole, 12),
    # How long an unpaid order keeps its reserved stock, in seconds; after that no new payment
    # of it may start. And what one unpaid order, and one customer's unpaid orders together
    # (by email), may hold: a line, an order, a customer, in items.
    "ORDER_PAYMENT_WINDOW": Setting(number, 1800.0),
    "ORDER_MAX_PER_LINE": Setting(whole, 10),
    "ORDER_MAX_UNITS": Setting(whole, 30),
    "CUSTOMER_MAX_UNPAID_UNITS": Setting(whole, 30),
    # A pending page asks the gateway again at most this often per payment, in seconds.
    "STATUS_RECHECK_SECONDS": Setting(number, 5.0),
    "MAIL_URL": Setting(text, ""),  # "" = mails written to instance/mail/
    "MAIL_FROM": Setting(text, "shop@storefront.invalid"),
    "CONTACT_EMAIL": Setting(text, ""),  # "" = MAIL_FROM
    # A mail claimed by a process that died while sending is taken over after this long.
    "MAIL_CLAIM_TIMEOUT": Setting(number, 300.0),
    # How long the "pay now" link in a payment-failed mail stays valid, in hours.
    "PAY_LINK_MAX_AGE_HOURS": Setting(number, 72.0),
    # How many reverse proxies in front of the shop to trust for X-Forwarded-* headers. Unset
    # means none in development; production refuses to guess (see production_problems).
    "PROXY_COUNT": Setting(optional_whole, ""),
    # Host names besides PUBLIC_URL's that requests may name (Host header), comma separated.
    "TRUSTED_HOSTS": Setting(names, ""),
    "RATELIMIT_ENABLED": Setting(boolean, True),
    # No form or callback of ours comes near this; a bigger body is refused (413) unread.
    "MAX_CONTENT_LENGTH": Setting(whole, 1024 * 1024),
    # Staff: failed sign-ins allowed per window per email from one address, per address
    # whatever the email, and per email whatever the address; how long a sign-in lasts;
    # orders per page of the admin's list.
    "ADMIN_SIGN_IN_LIMIT": Setting(whole, 5),
    "ADMIN_SIGN_IN_IP_LIMIT": Setting(whole, 50),
    "ADMIN_SIGN_IN_ACCOUNT_LIMIT": Setting(whole, 20),
    "ADMIN_SIGN_IN_WINDOW": Setting(number, 900.0),
    "ADMIN_SESSION_HOURS": Setting(number, 12.0),
    "ADMIN_ORDERS_PER_PAGE": Setting(whole, 25),
    # Where product pictures uploaded in the admin are kept ("" = instance/uploads/).
    "UPLOAD_FOLDER": Setting(text, ""),
    # The largest product picture accepted, in bytes (the upload form alone may exceed
    # MAX_CONTENT_LENGTH, by this much).
    "UPLOAD_MAX_BYTES": Setting(whole, 5 * 1024 * 1024),
    # Operations (storefront/ops). /readyz: a database without alembic_version (made by
    # create_all) counts as current only with this off; production always requires it.
    "READY_REQUIRE_MIGRATIONS": Setting(boolean, False),
    # An unsent mail older than this many seconds makes /readyz fail and raises an alert.
    "OUTBOX_STUCK_AFTER": Setting(number, 300.0),
    # Alerts: an order with more gateway callbacks than this; a payment unknown this long (s).
    "ALERT_CALLBACKS_PER_ORDER": Setting(whole, 20),
    "ALERT_UNKNOWN_AFTER": Setting(number, 900.0),
    # The reconciler's back-off: the wait after the 1st, 2nd, … check in a row that found a
    # payment unknown (or pending), the last repeated; how long a claimed check is reserved for
    # the process that claimed it; how many attempts one process claims at a time.
    "RECONCILE_UNKNOWN_BACKOFF": Setting(waits, "60,300,3600,86400"),
    "RECONCILE_PENDING_BACKOFF": Setting(waits, "60,300,900,3600,21600"),
    "RECONCILE_CLAIM_SECONDS": Setting(number, 300.0),
    "RECONCILE_BATCH": Setting(whole, 20),
    # Log lines as "json" or "text"; "auto" = JSON in production, text elsewhere.
    "LOG_FORMAT": Setting(choice("auto", "json", "text"), "auto"),
    # /metrics wants "Authorization: Bearer <this>" when set; in production, without one,
    # /metrics answers 404.
    "METRICS_TOKEN": Setting(text, ""),
}


def load(instance_path: str, environ: Mapping[str, str], overrides: Mapping | None) -> dict:
    """Build the configuration: defaults, then ``STOREFRONT_*`` variables, then ``overrides``
    (a test's); each value parsed by its setting's type. Keys that are not settings of ours
    (Flask's own, such as ``TESTING``) pass through from ``overrides`` unchanged."""
    config: dict[str, Any] = {name: s.parse(s.default) for name, s in SETTINGS.items()}
    given: dict[str, Any] = {
        name.removeprefix("STOREFRONT_"): raw
        for name, raw in environ.items()
        if name.removeprefix("STOREFRONT_") in SETTINGS and name.startswith("STOREFRONT_")
    }
    given.update(overrides or {})
    for name, value in given.items():
        if name not in SETTINGS:
            config[name] = value
            continue
        try:
            config[name] = SETTINGS[name].parse(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"STOREFRONT_{name}: {exc}") from exc
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = "sqlite:///" + str(Path(instance_path) / "storefront.db")
    return finish(config)


def finish(config: dict) -> dict:
    """Derive what follows from the settings, then check that they can run a shop."""
    config["PUBLIC_URL"] = config["PUBLIC_URL"].rstrip("/")
    sandbox = (config["SANDBOX_URL"] or config["PUBLIC_URL"] + "/sandbox").rstrip("/")
    config["SANDBOX_URL"] = sandbox
    for name, setting in SETTINGS.items():
        if setting.sandbox_path and not config[name]:
            config[name] = " ".join(sandbox + path for path in setting.sandbox_path.split())
    config["INTERPAY_CURRENCY"] = config["INTERPAY_CURRENCY"] or config["CURRENCY"]
    config["SQLALCHEMY_DATABASE_URI"] = _sqlalchemy_url(config["DATABASE_URL"])
    config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(config["SQLALCHEMY_DATABASE_URI"])
    https = config["PUBLIC_URL"].startswith("https://")
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_SECURE"] = https
    config["PREFERRED_URL_SCHEME"] = "https" if https else "http"
    config["WTF_CSRF_TIME_LIMIT"] = None  # a checkout form left open over lunch still works
    # Requests must name the shop's own host: a forged Host header would otherwise make the
    # shop build links and redirects to somewhere else. Loopback names too in development.
    hosts = [urlsplit(config["PUBLIC_URL"]).hostname or "", *config["TRUSTED_HOSTS"]]
    if config["ENV"] != "production":
        hosts += ["localhost", "127.0.0.1"]
    config["TRUSTED_HOSTS"] = sorted({host for host in hosts if host})
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


@functools.lru_cache(maxsize=64)
def _origin(url: str) -> str:
    # Asked on every response (the CSP's form-action): a setting's URL is parsed once.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def gateway_origins(config: Mapping) -> list[str]:
    """The origins the browser may be sent to at checkout (for the CSP ``form-action``): those
    of the gateways offered (``GATEWAYS``), not of any other URL left in the settings."""
    return sorted(
        {_origin(url) for name in config["GATEWAYS"] for url in REGISTRY[name].urls(config)}
    )


def check(config: Mapping) -> None:
    """Refuse configurations that would lose or misroute money. Raises :class:`ConfigError`."""
    try:
        currency_info(config["CURRENCY"])
    except UnsupportedCurrency as exc:
        raise ConfigError(f"STOREFRONT_CURRENCY: {exc}") from exc
    if config["DEFAULT_LOCALE"] not in config["LOCALES"]:
        raise ConfigError(
            f"STOREFRONT_DEFAULT_LOCALE {config['DEFAULT_LOCALE']!r} is not one of "
            f"STOREFRONT_LOCALES ({', '.join(config['LOCALES'])})"
        )
    if not urlsplit(config["PUBLIC_URL"]).netloc:
        raise ConfigError(
            "STOREFRONT_PUBLIC_URL must be an absolute URL such as https://shop.example"
        )
    unknown = [name for name in config["GATEWAYS"] if name not in REGISTRY]
    if unknown or not config["GATEWAYS"]:
        raise ConfigError(
            f"STOREFRONT_GATEWAYS must list {', '.join(REGISTRY)}, not {', '.join(unknown)}"
        )
    for name in config["GATEWAYS"]:
        for problem in REGISTRY[name].config_problems(config):
            raise ConfigError(problem)
    if config["ENV"] == "production":
        problems = production_problems(config)
        if problems:
            raise ConfigError("refusing to start in production:\n  - " + "\n  - ".join(problems))


def production_problems(config: Mapping) -> list[str]:
    """Everything that makes ``config`` unfit for real customers, all at once."""
    problems = []
    if not _strong_secret(config["SECRET_KEY"]):
        problems.append(
            "STOREFRONT_SECRET_KEY must be set to a random value of 32+ characters "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if not config["PUBLIC_URL"].startswith("https://"):
        problems.append("STOREFRONT_PUBLIC_URL must be https")
    if config["SANDBOX"]:
        problems.append("STOREFRONT_SANDBOX must be off")
    if not config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        problems.append(
            "STOREFRONT_DATABASE_URL must be a PostgreSQL URL: a shop on more than one server "
            "process or machine settles payments in PostgreSQL"
        )
    if config["PROXY_COUNT"] is None:
        problems.append(
            "STOREFRONT_PROXY_COUNT must be set: 0 when browsers reach the shop directly, else "
            "the number of reverse proxies in front of it (rate limits and logs key on the "
            "client's address, which only then is right)"
        )
    sandbox = config["SANDBOX_URL"]
    for name in config["GATEWAYS"]:
        family = REGISTRY[name]
        urls = family.urls(config)
        if not urls or any(sandbox in url or "/sandbox/" in url for url in urls):
            problems.append(f"STOREFRONT_{family.url_setting} points at the sandbox gateway")
        elif not all(url.startswith("https://") for url in urls):
            problems.append(f"STOREFRONT_{family.url_setting} must be https")
        for key in family.required_settings:
            if not config[key] or config[key] == SETTINGS[key].default:
                problems.append(f"STOREFRONT_{key} must be set (the sandbox's value is refused)")
    return problems


def _strong_secret(secret: str) -> bool:
    """32 characters or more, not the development key, and not a few characters repeated:
    a key of one repeated character has the length of a secret but none of its surprise."""
    if secret == DEV_SECRET_KEY or len(secret) < 32:
        return False
    counts = Counter(secret)
    entropy = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    return len(counts) >= 12 and entropy * len(secret) >= 128
