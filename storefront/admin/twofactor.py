"""The optional second sign-in factor: time-based one-time codes (RFC 6238, as authenticator
apps make them), with pyotp.

A staff member turns it on from their account page: a secret is made and shown (as text and as
an ``otpauth://`` URI an app can import), and it is on only once a first code from the app
confirms it. Each code is accepted once: the time step it was made for is kept.
"""

from __future__ import annotations

import hmac
import time

import pyotp
from flask import current_app

from storefront.admin.models import StaffUser

# A code of the step before or after the current one is accepted too: clocks drift.
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def uri(user: StaffUser) -> str:
    """The ``otpauth://`` URI of the account's secret, for an authenticator app."""
    if not user.totp_secret:
        raise ValueError("the account has no secret to add to an app")
    issuer = current_app.config["SHOP_NAME"]
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=issuer)


def grouped(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def accept(user: StaffUser, code: str) -> bool:
    """Whether ``code`` is a current code of the account's secret not used before; if so, its
    time step is recorded (committed by the caller)."""
    digits = "".join(code.split())
    if not user.totp_secret or len(digits) != 6 or not digits.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    now = time.time()
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if user.totp_last_step is not None and step <= user.totp_last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), digits):
            user.totp_last_step = step
            return True
    return False
