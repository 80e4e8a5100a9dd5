"""The shop in the customer's language: which language a request is answered in, and the switch.

The language is the customer's own choice, kept in the session (the header's links, which
work without JavaScript), else the best match of the browser's ``Accept-Language`` among
``STOREFRONT_LOCALES``, else ``STOREFRONT_DEFAULT_LOCALE``. The back office stays in English.

Texts are translated with Flask-Babel from ``storefront/translations/<lang>/LC_MESSAGES``. The
compiled catalogues (``.mo``) are built from the ``.po`` files and never committed: by ``make
i18n-compile`` (which ``make run`` and ``make test`` do first), and at start by the shop itself
for any that is missing or older than its ``.po``, so a deployment that only installs the
requirements and starts gunicorn speaks every language too. Where none can be written the shop
speaks English, and says so in its log.

Prices, dates and country names follow the language too (:func:`formatting_locale`), always in
the shop's one currency.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import force_locale as babel_force_locale
from flask_babel import get_locale, get_translations, gettext
from werkzeug.wrappers import Response

from storefront.extensions import babel

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
SESSION_KEY = "language"

bp = Blueprint("language", __name__)


def init_app(app: Flask) -> None:
    babel.init_app(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(TRANSLATIONS),
    )
    # {% trans %} blocks are written across lines; their text is one sentence.
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    # Flask-Babel's own callables look the translations up again for every text, which cost
    # more than the rest of a cart page; these look them up once per request.
    jinja: Any = app.jinja_env  # the i18n extension's method, which the stubs do not know
    jinja.install_gettext_callables(_gettext, _ngettext, newstyle=True)
    app.jinja_env.filters["translated"] = translated
    app.jinja_env.filters["language_in_english"] = language_in_english
    app.register_blueprint(bp)
    app.context_processor(_globals)
    app.after_request(_vary)
    _compile_if_stale(app)


# Where a request keeps its translations and its language, each looked up once.
_CACHED = "_storefront_translations"
_LOCALE = "_storefront_locale"


def _request_dict() -> dict[str, Any]:
    """The request object's own attributes (not the context-local proxy's)."""
    proxy: Any = request
    return vars(proxy._get_current_object())


def _translations():
    """This request's translations (Flask-Babel's), looked up once per request."""
    if not has_request_context():
        return get_translations()
    held = _request_dict()
    found = held.get(_CACHED)
    if found is None:
        found = held[_CACHED] = get_translations()
    return found


@contextmanager
def force_locale(locale: str | None) -> Iterator[None]:
    """Flask-Babel's ``force_locale``, which also sets aside the translations this request has
    looked up, so that templates rendered inside speak ``locale`` (a mail in its order's
    language, composed during another customer's request)."""
    held = _request_dict() if has_request_context() else {}
    saved = {key: held.pop(key) for key in (_CACHED, _LOCALE) if key in held}
    try:
        with babel_force_locale(locale):
            yield
    finally:
        for key in (_CACHED, _LOCALE):
            held.pop(key, None)
        held.update(saved)


def _gettext(text: str) -> str:
    return _translations().ugettext(text)


def _ngettext(singular: str, plural: str, number: int) -> str:
    return _translations().ungettext(singular, plural, number)


def N_(text: str) -> str:  # noqa: N802 - the name pybabel looks for
    """Mark ``text`` for the catalogues without translating it here: a text of ours that is
    stored (a payment's message for the customer) and translated where it is shown, by the
    ``translated`` filter."""
    return text


def translated(text: str) -> str:
    """``{{ attempt.message|translated }}``: a stored text of ours in this request's language;
    a text that is not ours (a bank's own words) as it is."""
    return gettext(text) if text else text


def supported_locales() -> list[str]:
    return list(current_app.config["LOCALES"])


def default_locale() -> str:
    return current_app.config["DEFAULT_LOCALE"]


def select_locale() -> str:
    """Flask-Babel's locale selector: the session's choice, else ``Accept-Language``, else the
    shop's default. The back office is English whatever the customer pages are in."""
    if request.blueprint == "admin":
        return "en"
    chosen = chosen_locale()
    if chosen is not None:
        return chosen
    return request.accept_languages.best_match(supported_locales()) or default_locale()


def chosen_locale() -> str | None:
    """The language the customer picked with the switcher in this session, if any."""
    if not has_request_context() or request.blueprint == "admin":
        return None
    chosen = session.get(SESSION_KEY)
    return chosen if isinstance(chosen, str) and chosen in supported_locales() else None


def order_page_locale(order_locale: str) -> str:
    """The language an order's own pages (receipt, pending, failure) are shown in: the one the
    order was placed in, as its mails are, so that a receipt link opened from a German mail on
    an English browser, or a page the gateway fetches and relays, reads like the mail. A
    customer who picks another language with the switcher gets that one: the switcher must
    work on every page."""
    chosen = chosen_locale()
    if chosen is not None:
        return chosen
    return order_locale if order_locale in supported_locales() else current_locale()


def shop_locale(code: str | None) -> str:
    """``code`` when the shop speaks it (a language a gateway names back to us), else this
    request's language."""
    return code if code and code in supported_locales() else current_locale()


def current_locale() -> str:
    """The language this request is answered in (``"de"``); the default outside a request."""
    if not has_request_context():
        return default_locale()
    held = _request_dict()
    found = held.get(_LOCALE)
    if found is None:
        found = held[_LOCALE] = str(get_locale() or default_locale())
    return found


def formatting_locale() -> str:
    """The Babel locale that prices, dates and country names are written in: the shop's own
    ``STOREFRONT_LOCALE`` when it is in the customer's language (``en_IE`` for English, so
    Irish euro style), else the customer's language itself (``de``: ``12,50 €``)."""
    shop = current_app.config["LOCALE"]
    language = current_locale()
    return shop if _language_of(shop) == _language_of(language) else language


@functools.lru_cache(maxsize=32)
def _language_of(locale: str) -> str:
    return Locale.parse(locale).language


@functools.lru_cache(maxsize=32)
def language_name(code: str) -> str:
    """A language named in itself, as a switcher shows it: 'Deutsch', 'Русский'."""
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


@functools.lru_cache(maxsize=32)
def language_in_english(code: str) -> str:
    """A language as the (English) back office names it: 'German (de)'."""
    try:
        name = Locale.parse(code).get_display_name("en")
    except (ValueError, UnknownLocaleError):
        name = None
    return f"{name} ({code})" if name else code


@bp.get("/language/<code>")
def choose(code: str) -> Response:
    """Answer in ``code`` from now on, and go back to ``?next=`` (a path of this shop).

    A GET, unlike the shop's other changes: it touches no cart, order or money, only the
    language pages are shown in, and so it works as a plain link on every page, cached ones
    included, with no form or CSRF token in them.

    :raise 404: a language the shop does not offer.
    """
    if code not in supported_locales():
        abort(404)
    session[SESSION_KEY] = code
    return redirect(safe_next(request.args.get("next")), code=303)


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else the front page: the switch must not be
    a way to send someone elsewhere (``//evil.example``, ``https://…``, ``/\\evil``)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return url_for("catalogue.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(c in target for c in "\r\n\\"):
        return url_for("catalogue.home")
    return target


# A longer query (a pasted search of thousands of characters) is not carried into every link.
MAX_NEXT_QUERY = 100


def _here() -> str:
    """This page's path and its query when short, for the switcher's ``next``."""
    query = request.query_string.decode("latin-1")
    keep = query and len(query) <= MAX_NEXT_QUERY
    return request.path + ("?" + query if keep else "")


def _globals() -> dict:
    """``locale`` for ``<html lang>``; ``languages`` for the switcher, whose links come back to
    ``language_next``: this page, unless the view passes another (an error page passes the
    front page, so that its body does not depend on which wrong address was asked for)."""
    if not has_request_context():
        return {"locale": default_locale(), "languages": [], "language_next": "/"}
    locale = current_locale()
    return {
        "locale": locale,
        "languages": [
            {"code": code, "name": language_name(code), "current": code == locale}
            for code in supported_locales()
        ],
        "language_next": _here(),
    }


def _vary(response: Response) -> Response:
    # The same URL answers in another language for another browser: a shared cache must keep
    # one copy per Accept-Language (the session's choice is in the cookie, already varied on).
    response.vary.add("Accept-Language")
    return response


def _compile_if_stale(app: Flask) -> None:
    directory = Path(app.config.get("BABEL_TRANSLATION_DIRECTORIES") or TRANSLATIONS)
    for code in app.config["LOCALES"]:
        source = directory / code / "LC_MESSAGES" / "messages.po"
        compiled = source.with_suffix(".mo")
        if not source.exists():
            continue
        if compiled.exists() and compiled.stat().st_mtime >= source.stat().st_mtime:
            continue
        try:
            compile_catalogue(source, compiled)
        except OSError as exc:
            app.logger.warning(
                "could not compile the %s catalogue (%s): pages are in English until "
                "make i18n-compile has run",
                code,
                exc,
            )


def compile_catalogue(source: Path, target: Path) -> None:
    """``.po`` to ``.mo``, as ``pybabel compile`` does. Written aside and renamed into place:
    several server processes starting at once each see a whole file or none."""
    with source.open("rb") as po:
        catalog = read_po(po, locale=source.parent.parent.name)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    with partial.open("wb") as mo:
        write_mo(mo, catalog)
    os.replace(partial, target)
