"""Card number checks shared by the hosted payment pages."""

from __future__ import annotations


def digits(pan: str) -> str:
    return "".join(ch for ch in str(pan) if ch.isdigit())


def luhn_ok(pan: str) -> bool:
    number = digits(pan)
    if not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand(pan: str) -> str:
    number = digits(pan)
    if number.startswith("4"):
        return "VISA"
    if (
        number[:2] in {"51", "52", "53", "54", "55"}
        or number[:4].isdigit()
        and 2221 <= int(number[:4]) <= 2720
    ):
        return "MASTERCARD"
    if number[:2] in {"34", "37"}:
        return "AMEX"
    return "CARD"


def mask(pan: str, middle: str = "**") -> str:
    """First six and last four digits: '411111**1111' (BPC) or with '******' (AltaPay)."""
    number = digits(pan)
    return f"{number[:6]}{middle}{number[-4:]}"
