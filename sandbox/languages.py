"""The hosted payment pages in the language the shop asked for.

A real gateway shows its page in the language of the payment request (BPC/RBS ``language``,
AltaPay ``language``, InterPay ``LANG``). The sandbox knows a handful of its own phrases in
English, German, Russian and French, enough for a page's title, headings, card fields and
buttons; anything else, and any other language, stays English. The sandbox has no Flask-Babel
and needs none: the texts are keyed by their English wording, so a template reads
``{{ say("Card number") }}`` and shows English where nothing else is known.
"""

from __future__ import annotations

from typing import Any

from jinja2 import pass_context

DEFAULT = "en"

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "Sandbox Gateway": "Sandbox Gateway",
        "test mode: no real card is ever charged": "Testmodus: keine echte Karte wird belastet",
        "Pay {amount} to {merchant}": "{amount} an {merchant} zahlen",
        "Payment to {merchant}": "Zahlung an {merchant}",
        "Pay order {order}": "Bestellung {order} bezahlen",
        "Card payment": "Kartenzahlung",
        "InterPay payment": "InterPay-Zahlung",
        "Payment": "Zahlung",
        "Order": "Bestellung",
        "Order number": "Bestellnummer",
        "Description": "Beschreibung",
        "Your order": "Ihre Bestellung",
        "Item": "Artikel",
        "Quantity": "Menge",
        "Amount": "Betrag",
        "Total": "Gesamt",
        "Card number": "Kartennummer",
        "Expiry date (MM/YY)": "Ablaufdatum (MM/JJ)",
        "Expiry (MM/YY)": "Gültig bis (MM/JJ)",
        "Expiry month (MM)": "Ablaufmonat (MM)",
        "Expiry year (YY)": "Ablaufjahr (JJ)",
        "Security code (CVC)": "Prüfnummer (CVC)",
        "Security code": "Prüfnummer",
        "Cardholder name": "Name des Karteninhabers",
        "Name on the card": "Name auf der Karte",
        "Pay {amount}": "{amount} bezahlen",
        "Cancel": "Abbrechen",
        "Cancel payment": "Zahlung abbrechen",
    },
    "ru": {
        "Sandbox Gateway": "Sandbox Gateway",
        "test mode: no real card is ever charged": "тестовый режим: деньги с карт не списываются",
        "Pay {amount} to {merchant}": "Оплата {amount} для {merchant}",
        "Payment to {merchant}": "Оплата для {merchant}",
        "Pay order {order}": "Оплата заказа {order}",
        "Card payment": "Оплата картой",
        "InterPay payment": "Оплата через InterPay",
        "Payment": "Оплата",
        "Order": "Заказ",
        "Order number": "Номер заказа",
        "Description": "Описание",
        "Your order": "Ваш заказ",
        "Item": "Товар",
        "Quantity": "Количество",
        "Amount": "Сумма",
        "Total": "Итого",
        "Card number": "Номер карты",
        "Expiry date (MM/YY)": "Срок действия (ММ/ГГ)",
        "Expiry (MM/YY)": "Срок действия (ММ/ГГ)",
        "Expiry month (MM)": "Месяц (ММ)",
        "Expiry year (YY)": "Год (ГГ)",
        "Security code (CVC)": "Код безопасности (CVC)",
        "Security code": "Код безопасности",
        "Cardholder name": "Имя владельца карты",
        "Name on the card": "Имя на карте",
        "Pay {amount}": "Оплатить {amount}",
        "Cancel": "Отмена",
        "Cancel payment": "Отменить оплату",
    },
    "fr": {
        "Sandbox Gateway": "Sandbox Gateway",
        "test mode: no real card is ever charged": "mode test : aucune carte n’est débitée",
        "Pay {amount} to {merchant}": "Payer {amount} à {merchant}",
        "Payment to {merchant}": "Paiement à {merchant}",
        "Pay order {order}": "Payer la commande {order}",
        "Card payment": "Paiement par carte",
        "InterPay payment": "Paiement InterPay",
        "Payment": "Paiement",
        "Order": "Commande",
        "Order number": "Numéro de commande",
        "Description": "Description",
        "Your order": "Votre commande",
        "Item": "Article",
        "Quantity": "Quantité",
        "Amount": "Montant",
        "Total": "Total",
        "Card number": "Numéro de carte",
        "Expiry date (MM/YY)": "Date d’expiration (MM/AA)",
        "Expiry (MM/YY)": "Expiration (MM/AA)",
        "Expiry month (MM)": "Mois d’expiration (MM)",
        "Expiry year (YY)": "Année d’expiration (AA)",
        "Security code (CVC)": "Cryptogramme (CVC)",
        "Security code": "Cryptogramme",
        "Cardholder name": "Nom du titulaire",
        "Name on the card": "Nom sur la carte",
        "Pay {amount}": "Payer {amount}",
        "Cancel": "Annuler",
        "Cancel payment": "Annuler le paiement",
    },
}


def page_language(code: str | None) -> str:
    """The language a page is shown in for a requested ``code`` (``"de"``, ``"DE"``): one the
    sandbox has texts for, else English."""
    text = (code or "").strip().lower()
    return text if text in TEXTS else DEFAULT


def translate(text: str, language: str, **values: Any) -> str:
    """``text`` (the English wording) in ``language``, with ``{name}`` filled from ``values``."""
    return TEXTS.get(language, {}).get(text, text).format(**values)


@pass_context
def shown_in(context) -> str:
    """The templates' ``shown_in()``: the page's language for ``<html lang>``."""
    return page_language(context.get("lang"))


@pass_context
def say(context, text: str, **values: Any) -> str:
    """The templates' ``say("Card number")``: in the page's ``lang`` (English when unset)."""
    return translate(text, page_language(context.get("lang")), **values)
