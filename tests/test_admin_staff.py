"""Staff accounts from the back office: owners manage them, roles and the payments permission
decide what each may do, passwords follow the policy, and two-step sign-in is optional.

The payments permission is tried against the live sandbox gateway: a refused capture, void or
refund must not reach the gateway at all.
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from sqlalchemy import select

from storefront.admin.models import AuditEntry, StaffUser
from storefront.extensions import db
from storefront.payments.models import AttemptState, PaymentAttempt
from tests.back_office import CLERK, OWNER, PASSWORD, Office, make_account
from tests.browser import Browser
from tests.journeys import latest_order, pay_rbs, product, to_gateway

NEW_PASSWORD = "seven quiet herons at dusk"


@pytest.fixture
def owner(app, client):
    make_account(app, OWNER)
    office = Office(client)
    assert "Signed in" in office.sign_in()
    return office


def account(app, email: str) -> StaffUser:
    with app.app_context():
        user = db.session.execute(select(StaffUser).where(StaffUser.email == email)).scalar_one()
        db.session.expunge(user)
        return user


def add_staff(office: Office, **values):
    page = office.get("/admin/staff/new")
    fields = {"email": CLERK, "name": "Cal Clerk", "password": PASSWORD, "repeat": PASSWORD}
    return office.submit(page.form("/admin/staff/new"), **{**fields, **values})


# create-admin ----------------------------------------------------------------------------------
def test_create_admin_makes_an_owner(app, runner):
    result = runner.invoke(args=["create-admin", OWNER], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    user = account(app, OWNER)
    assert (user.role, user.is_owner, user.may_move_money) == ("owner", True, True)


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("owner@example.com", "must not be the email address"),
        ("password1234", "one of the most common ones"),
        ("aaaaaaaaaaaaaaaa", "one of the most common ones"),
        ("short", "at least 12 characters"),
    ],
)
def test_create_admin_follows_the_password_policy(app, runner, password, says):
    result = runner.invoke(args=["create-admin", OWNER, "--password-stdin"], input=password + "\n")
    assert result.exit_code != 0 and says in result.output


# An owner manages the staff ------------------------------------------------------------------
def test_an_owner_creates_a_staff_account_that_can_sign_in(app, client, owner):
    page = add_staff(owner)
    assert f"{CLERK} can now sign in with the password you gave." in page
    user = account(app, CLERK)
    assert (user.role, user.can_refund, user.active) == ("staff", False, True)
    with app.app_context():
        entry = db.session.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).scalar()
        assert (entry.actor, entry.action, entry.subject) == (OWNER, "staff created", CLERK)

    clerk = Office(app.test_client())
    page = clerk.sign_in(CLERK)
    assert "Signed in as Cal Clerk" in page
    assert "/admin/staff" not in [href for _, href in page.links]  # no Staff menu for staff
    assert clerk.get("/admin/staff").status == 403
    assert "Only an owner of the shop may manage staff accounts." in clerk.page
    assert clerk.get("/admin/staff/new").status == 403
    assert clerk.get("/admin/products").status == 200  # the catalogue is staff's work too


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"password": CLERK, "repeat": CLERK}, "The password must not be the email address."),
        ({"password": "qwerty123456", "repeat": "qwerty123456"}, "one of the most common ones"),
        ({"password": "too short", "repeat": "too short"}, "at least 12 characters"),
        ({"repeat": PASSWORD + "!"}, "The two passwords differ."),
        ({"email": "not an email"}, "Type an email address"),
        ({"email": OWNER}, "owner@example.com has an account already."),
    ],
)
def test_a_new_account_follows_the_password_policy(app, owner, values, says):
    page = add_staff(owner, **values)
    assert page.status == 422 and says in page and 'role="alert"' in page.text
    with app.app_context():
        assert db.session.execute(select(StaffUser.email)).scalars().all() == [OWNER]


def test_deactivating_or_a_new_password_ends_the_accounts_sessions(app, owner):
    add_staff(owner)
    clerk_id = account(app, CLERK).id
    clerk = Office(app.test_client())
    clerk.sign_in(CLERK)
    page = owner.get(f"/admin/staff/{clerk_id}")
    page = owner.submit(page.form("/password"), password=NEW_PASSWORD, repeat=NEW_PASSWORD)
    assert "has a new password; its other sessions have ended." in page
    assert "/admin/sign-in" in clerk.get("/admin/orders").url
    assert "Signed in" in clerk.sign_in(CLERK, NEW_PASSWORD)

    page = owner.submit(owner.get(f"/admin/staff/{clerk_id}").form("/deactivate"))
    assert "deactivated: its sessions have ended" in page
    assert "/admin/sign-in" in clerk.get("/admin/orders").url
    assert "not right" in clerk.sign_in(CLERK, NEW_PASSWORD)
    page = owner.submit(owner.get(f"/admin/staff/{clerk_id}").form("/reactivate"))
    assert "Signed in" in clerk.sign_in(CLERK, NEW_PASSWORD)


def test_the_last_owner_cannot_be_demoted_or_deactivated(app, owner):
    owner_id = account(app, OWNER).id
    page = owner.get(f"/admin/staff/{owner_id}")
    page = owner.submit(page.form(f"/admin/staff/{owner_id}"), role="staff")
    assert page.status == 422 and "The shop needs an owner" in page
    page = owner.submit(owner.get(f"/admin/staff/{owner_id}").form("/deactivate"))
    assert "You cannot deactivate your own account." in page
    assert account(app, OWNER).is_owner and account(app, OWNER).active


def test_an_owner_gives_the_payments_permission(app, owner):
    add_staff(owner)
    clerk_id = account(app, CLERK).id
    page = owner.get(f"/admin/staff/{clerk_id}")
    page = owner.submit(page.form(f"/admin/staff/{clerk_id}"), can_refund="y", name="Cal")
    assert f"{CLERK} is saved." in page
    assert account(app, CLERK).may_move_money and not account(app, CLERK).is_owner


def test_own_password_change_needs_the_current_one_and_keeps_this_session(app, owner):
    page = owner.get("/admin/account")
    form = page.form("/admin/account/password")
    page = owner.submit(form, current="wrong password!", password=NEW_PASSWORD, repeat=NEW_PASSWORD)
    assert page.status == 422 and "This is not your current password." in page
    page = owner.submit(form, current=PASSWORD, password=NEW_PASSWORD, repeat=NEW_PASSWORD)
    assert "Your password is changed" in page
    assert owner.get("/admin/orders").status == 200  # still signed in here
    assert account(app, OWNER).check_password(NEW_PASSWORD)


# Two-step sign-in ----------------------------------------------------------------------------
def code_at(secret: str, offset: float = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset)


def test_two_step_sign_in_is_set_up_confirmed_asked_for_and_reset_by_an_owner(app, owner):
    add_staff(owner)
    clerk = Office(app.test_client())
    clerk.sign_in(CLERK)
    page = clerk.submit(clerk.get("/admin/account").form("/admin/account/two-step"))
    secret = account(app, CLERK).totp_secret
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert " ".join(secret[i : i + 4] for i in range(0, 32, 4)) in page
    assert f"otpauth://totp/Storefront:clerk%40example.com?secret={secret}" in page
    assert "<script" not in page.text.lower()

    form = page.form("/two-step/confirm")
    page = clerk.submit(form, code="000000" if code_at(secret) != "000000" else "111111")
    assert page.status == 422 and "not the one your app shows now" in page
    assert not account(app, CLERK).totp_enabled
    page = clerk.submit(page.form("/two-step/confirm"), code=code_at(secret))
    assert "Two-step sign-in is on" in page and account(app, CLERK).totp_enabled

    # Signing in now takes the password, then a code; a code works once.
    again = Office(app.test_client())
    page = again.sign_in(CLERK)
    assert "Your sign-in code" in page and "/admin/sign-in/code" in page.url
    assert again.get("/admin/orders").url.endswith("/admin/sign-in")  # not signed in yet
    page = again.get("/admin/sign-in")
    page = again.sign_in(CLERK)
    page = again.submit(page.form("/admin/sign-in/code"), code="12345x")
    assert page.status == 422 and "This code is not right, or was used already." in page
    page = again.submit(page.form("/admin/sign-in/code"), code=code_at(secret))  # used to confirm
    assert page.status == 422
    later = code_at(secret, 30)  # the next time step, within the clock drift allowed
    page = again.submit(page.form("/admin/sign-in/code"), code=later)
    assert "Signed in as Cal Clerk" in page

    replay = Office(app.test_client())
    page = replay.sign_in(CLERK)
    page = replay.submit(page.form("/admin/sign-in/code"), code=later)
    assert page.status == 422 and "used already" in page

    # A lost phone: an owner turns the codes off; the password alone signs in again.
    clerk_id = account(app, CLERK).id
    page = owner.submit(owner.get(f"/admin/staff/{clerk_id}").form("/two-step"))
    assert "signs in with the password alone" in page
    assert "Signed in as Cal Clerk" in Office(app.test_client()).sign_in(CLERK)


def test_wrong_codes_are_throttled(app, owner):
    app.config["RATELIMIT_ENABLED"] = True
    with app.app_context():
        user = db.session.execute(select(StaffUser)).scalar_one()
        user.totp_secret, user.totp_enabled = pyotp.random_base32(), True
        db.session.commit()
        secret = user.totp_secret
    other = Office(app.test_client())
    page = other.sign_in(OWNER)
    for _ in range(app.config["ADMIN_SIGN_IN_LIMIT"]):
        page = other.submit(page.form("/admin/sign-in/code"), code="999999")
    page = other.submit(page.form("/admin/sign-in/code"), code=code_at(secret, 30))
    assert page.status == 429 and "Too many wrong codes" in page


def test_staff_pages_have_no_script_and_a_label_for_every_input(app, owner):
    add_staff(owner)
    clerk_id = account(app, CLERK).id
    owner.submit(owner.get("/admin/account").form("/admin/account/two-step"))
    for url in ("/admin/staff", "/admin/staff/new", f"/admin/staff/{clerk_id}", "/admin/account"):
        page = owner.get(url)
        assert page.status == 200, url
        assert "<script" not in page.text.lower()
        assert not re.search(r"\s(style|on[a-z]+)=", page.text)
        labels = set(re.findall(r'<label[^>]*for="([^"]+)"', page.text))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page.text):
            if not re.search(r'type="(hidden|submit)"', tag):
                assert re.search(r'id="([^"]+)"', tag).group(1) in labels, (url, tag)


# The payments permission, on the live sandbox -------------------------------------------------
def held_payment(shop, price: int = 2500):
    _, slug = product(shop, name="Yirgacheffe", price=price, stock=5)
    customer = Browser()
    to_gateway(shop, customer, slug)
    pay_rbs(customer)
    order, [attempt] = latest_order(shop)
    assert attempt.state == AttemptState.AUTHORIZED
    return order, attempt


def signed_in(shop, email: str) -> Browser:
    operator = Browser()
    page = operator.get(f"{shop.url}/admin/sign-in")
    page = operator.submit(page.form("/admin/sign-in"), email=email, password=PASSWORD)
    assert "Signed in" in page, page.text
    return operator


def at_the_sandbox(sandbox, reference: str) -> dict:
    return next(doc for doc in sandbox.state()["rbs_order"] if doc["orderNumber"] == reference)


def attempt_state(shop, attempt_id: int) -> tuple[str, int, int]:
    with shop.db() as session:
        attempt = session.get(PaymentAttempt, attempt_id)
        return attempt.state, attempt.captured, attempt.refunded


def test_staff_without_the_permission_cannot_move_money_and_the_gateway_is_not_called(
    make_shop, sandbox
):
    shop = make_shop(RBS_TWO_PHASE=True)
    make_account(shop.app, OWNER)
    make_account(shop.app, CLERK, role="staff")
    order, attempt = held_payment(shop)
    clerk = signed_in(shop, CLERK)

    page = clerk.get(f"{shop.url}/admin/orders/{order.number}")
    assert "need the payments permission, which your account does not have" in page
    assert not any(f.action.endswith(("/capture", "/void", "/refund")) for f in page.forms)
    token = page.form("/admin/sign-out").fields["csrf_token"]
    base = f"{shop.url}/admin/orders/{order.number}/payments/{attempt.id}"
    for action in ("capture", "void"):
        fields = {
            f"{action}-{attempt.id}-csrf_token": token,
            f"{action}-{attempt.id}-amount": "25.00",
        }
        page = clerk.submit(type(page.forms[0])(f"{base}/{action}", "post", {}), **fields)
        assert "may not capture, void or refund payments" in page
        assert "Nothing was sent to the gateway." in page
    gateway_side = at_the_sandbox(sandbox, attempt.reference)
    assert gateway_side["depositedAmount"] == 0 and gateway_side.get("reversedDate") is None
    assert attempt_state(shop, attempt.id) == (AttemptState.AUTHORIZED, 0, 0)

    # The owner captures; the evidence names who did it. The clerk still cannot refund.
    owner = signed_in(shop, OWNER)
    page = owner.get(f"{shop.url}/admin/orders/{order.number}")
    page = owner.submit(page.form("/capture"))
    assert "Capture of €25.00 done." in page
    assert re.search(
        r'<span class="actor">staff</span><br><span class="muted">owner@example.com', page.text
    )
    fields = {f"refund-{attempt.id}-csrf_token": token, f"refund-{attempt.id}-amount": "5.00"}
    clerk.get(f"{shop.url}/admin/orders/{order.number}")
    page = clerk.submit(type(page.forms[0])(f"{base}/refund", "post", {}), **fields)
    assert "may not capture, void or refund payments" in page
    assert at_the_sandbox(sandbox, attempt.reference)["refundedAmount"] == 0
    assert attempt_state(shop, attempt.id) == (AttemptState.PAID, 2500, 0)


def test_staff_forms_need_their_csrf_token(app, owner):
    response = owner.client.post(
        "/admin/staff/new",
        data={"email": CLERK, "password": PASSWORD, "repeat": PASSWORD, "role": "owner"},
    )
    assert response.status_code == 400
    owner_id = account(app, OWNER).id
    assert owner.client.post(f"/admin/staff/{owner_id}/two-step").status_code == 400
    with app.app_context():
        assert db.session.execute(select(StaffUser.email)).scalars().all() == [OWNER]
