"""The shop in the customer's language: chosen by the browser or the customer, kept for the
session, never leaked to another customer through the page cache, prices written for it, and
every marked text translated in every language the shop ships."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from sqlalchemy import select

from storefront.catalogue.models import Product
from storefront.catalogue.seed import seed_demo_catalogue
from storefront.extensions import db
from storefront.i18n import current_locale
from storefront.orders import mail
from storefront.orders.service import CustomerDetails, place_order
from tests.browser import Page
from tests.factories import make_app

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "storefront" / "translations"
SHIPPED = ("de", "ru")
PRODUCT = "/p/ethiopia-yirgacheffe-250-g"  # €12.50
page = Page.from_test_client


def text(response) -> str:
    return response.get_data(as_text=True)


def lang_of(html: str) -> str:
    found = re.search(r'<html lang="([^"]+)">', html)
    assert found, "no <html lang> on the page"
    return found.group(1)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    """The catalogues as they are in the tree, compiled here: the tests read the .po files
    themselves, whether or not `make i18n-compile` has been run."""
    folder = tmp_path_factory.mktemp("translations")
    for code in SHIPPED:
        with (TRANSLATIONS / code / "LC_MESSAGES" / "messages.po").open("rb") as source:
            catalog = read_po(source, locale=code)
        target = folder / code / "LC_MESSAGES"
        target.mkdir(parents=True)
        with (target / "messages.mo").open("wb") as out:
            write_mo(out, catalog)
    return folder


@pytest.fixture
def app(tmp_path, compiled):
    app = make_app(tmp_path, BABEL_TRANSLATION_DIRECTORIES=str(compiled))
    with app.app_context():
        seed_demo_catalogue()
    return app


def test_a_german_browser_gets_the_shop_in_german(client):
    html = text(client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}))
    assert lang_of(html) == "de"
    for words in ("Empfehlungen", "Warenkorb", "Bestellung finden", "Auf Lager"):
        assert words in html
    for words in ("Featured", "Find your order", "In stock", "Skip to content"):
        assert words not in html


def test_a_russian_browser_gets_the_shop_in_russian(client):
    html = text(client.get("/", headers={"Accept-Language": "ru"}))
    assert lang_of(html) == "ru"
    for words in ("Рекомендуем", "Корзина", "Найти заказ", "В наличии"):
        assert words in html
    assert "Featured" not in html


def test_without_a_known_language_the_shop_speaks_its_default(app, client):
    assert lang_of(text(client.get("/"))) == "en"
    html = text(client.get("/", headers={"Accept-Language": "fr, ja;q=0.5"}))
    assert lang_of(html) == "en"
    assert "Featured" in html
    app.config["DEFAULT_LOCALE"] = "de"
    assert lang_of(text(client.get("/", headers={"Accept-Language": "fr"}))) == "de"


def test_the_choice_is_kept_for_the_session_and_beats_accept_language(client):
    german = {"Accept-Language": "de"}
    switcher = page(client.get("/c/coffee", headers=german))
    link = urlsplit(switcher.link("Русский"))
    assert (link.path, link.query) == ("/language/ru", "next=/c/coffee")
    answer = client.get(f"{link.path}?{link.query}", headers=german)
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/c/coffee"
    assert lang_of(text(client.get("/", headers=german))) == "ru"
    # On through the cart to checkout, still in Russian.
    form = page(client.get(PRODUCT, headers=german)).form("/cart/add")
    assert "В корзину" in text(client.get(PRODUCT, headers=german))
    client.post(form.action, data={**form.fields, "quantity": "1"}, headers=german)
    cart = text(client.get("/cart/", headers=german))
    assert "Оформить заказ" in cart
    details = text(client.get("/checkout/", headers=german))
    assert lang_of(details) == "ru"
    assert "Ваши данные" in details
    assert "Германия" in details  # the country list is in the page's language
    client.get("/language/en?next=/", headers=german)
    assert lang_of(text(client.get("/", headers=german))) == "en"


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "evil", ""]
)
def test_the_switch_only_goes_back_to_a_page_of_this_shop(client, target):
    answer = client.get("/language/de", query_string={"next": target})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/"


def test_a_language_the_shop_does_not_offer_is_not_found(client):
    assert client.get("/language/fr?next=/").status_code == 404
    assert lang_of(text(client.get("/"))) == "en"


def test_a_cached_catalogue_page_never_shows_one_customers_language_to_another(app):
    german, english, russian = app.test_client(), app.test_client(), app.test_client()
    first = text(german.get(PRODUCT, headers={"Accept-Language": "de"}))
    assert "In den Warenkorb" in first
    again = text(english.get(PRODUCT))
    assert lang_of(again) == "en"
    assert "Add to cart" in again
    assert "In den Warenkorb" not in again
    assert "В корзину" in text(russian.get(PRODUCT, headers={"Accept-Language": "ru"}))
    # And the German page is still German when it comes out of the cache.
    assert "In den Warenkorb" in text(german.get(PRODUCT, headers={"Accept-Language": "de"}))


def test_pages_say_they_vary_by_language(client):
    answer = client.get("/terms", headers={"Accept-Language": "de"})
    assert "Accept-Language" in answer.headers["Vary"]
    assert "Bestellung und Vertragsschluss" in text(answer)


def test_prices_are_written_for_the_language_in_the_shops_one_currency(client):
    assert "€12.50" in text(client.get(PRODUCT))
    german = text(client.get(PRODUCT, headers={"Accept-Language": "de"}))
    assert "12,50\N{NO-BREAK SPACE}€" in german
    russian = text(client.get(PRODUCT, headers={"Accept-Language": "ru"}))
    assert "12,50\N{NO-BREAK SPACE}€" in russian


def test_form_errors_are_in_the_customers_language(client):
    german = {"Accept-Language": "de"}
    form = page(client.get(PRODUCT, headers=german)).form("/cart/add")
    client.post(form.action, data={**form.fields, "quantity": "1"}, headers=german)
    checkout = page(client.get("/checkout/", headers=german)).form("/checkout/")
    html = text(
        client.post(
            "/checkout/", data={"csrf_token": checkout.fields["csrf_token"]}, headers=german
        )
    )
    assert "Bitte akzeptieren Sie die AGB, um zu bestellen." in html  # ours
    assert "Dieses Feld wird benötigt." in html  # WTForms' own, in its German
    assert "This field is required." not in html


def extract(target: Path) -> Path:
    """What `make i18n-extract` collects, extracted afresh (the same keywords as there)."""
    pot = target / "messages.pot"
    CommandLineInterface().run(
        [
            "pybabel",
            "--quiet",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "-o",
            str(pot),
            str(ROOT),
        ]
    )
    return pot


def test_every_marked_text_is_translated_in_every_shipped_language(tmp_path):
    with extract(tmp_path).open("rb") as source:
        wanted = [message for message in read_po(source) if message.id]
    assert len(wanted) > 200, "extraction found too little: is babel.cfg read?"
    problems = []
    for code in SHIPPED:
        with (TRANSLATIONS / code / "LC_MESSAGES" / "messages.po").open("rb") as source:
            catalog = read_po(source, locale=code)
        for message in wanted:
            found = catalog.get(message.id)
            strings = found.string if found is not None else ""
            strings = strings if isinstance(strings, tuple) else (strings,)
            if found is None or not all(strings):
                problems.append(f"{code}: no translation of {message.id!r}")
            elif found.fuzzy:
                problems.append(f"{code}: fuzzy translation of {message.id!r}")
            elif message.pluralizable and len(strings) != catalog.num_plurals:
                problems.append(f"{code}: {message.id!r} needs {catalog.num_plurals} forms")
        # Placeholders that differ from the English text's (Babel's own checks).
        for message, errors in catalog.check():
            problems.extend(f"{code}: {message.id!r}: {error}" for error in errors)
    assert not problems, "\n".join(problems)


def test_current_locale_is_the_requests_language_and_the_default_outside_one(app):
    with app.test_request_context("/", headers={"Accept-Language": "ru;q=0.8, de"}):
        assert current_locale() == "de"
    with app.app_context():
        assert current_locale() == "en"


def test_a_mail_composed_in_german_is_german_throughout(app):
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        product = db.session.execute(select(Product).where(Product.price == 1250)).scalars().first()
        details = CustomerDetails("ann@example.com", "Ann", "1 Main Street", "Dublin", "D01", "IE")
        order, _ = place_order([(product, 1)], details, "checkout-key-de")
        email = mail._compose("payment_failed", order)
    assert email["Subject"] == f"Storefront: Bestellung {order.number} noch nicht bezahlt"
    plain = email.get_body(("plain",)).get_content()
    assert "Hallo Ann," in plain and "ist nicht durchgegangen" in plain
    assert "Jetzt bezahlen: http" in plain and "Summe: 12,50" in plain  # a no-break space, then €
    html = email.get_body(("html",)).get_content()
    assert '<html lang="de">' in html and "<strong>Jetzt bezahlen</strong>" in html
    assert f"Ihre Bestellung <strong>{order.number}</strong>" in html
