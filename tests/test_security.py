"""Security: headers on every answer, the session cookie, CSRF on every shop form (and not on
the gateways' callbacks), unguessable receipt links with one uniform 404, the production
configuration's refusals, rate limits, and bad input that never becomes a 500.

Most tests run on the ``app``/``client`` fixtures; where a gateway is involved, a live shop talks
to the live sandbox over HTTP (``make_shop``). One test also runs on PostgreSQL, which refuses a
NUL character in text where SQLite stores it.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.test import encode_multipart

from storefront import create_app
from storefront.admin.models import StaffUser
from storefront.catalogue.models import Product
from storefront.config import DEV_SECRET_KEY, ConfigError
from storefront.extensions import db
from storefront.orders.models import Order, OrderEvent, OrderLine, OrderState, OutboxMessage
from storefront.orders.service import new_token
from storefront.payments.models import AttemptState, PaymentAttempt, PaymentEvent
from storefront.timeutil import now_utc
from tests.browser import Browser, Page
from tests.deployment import database_url, drop_database
from tests.factories import make_product
from tests.journeys import CUSTOMER, latest_order, to_gateway
from tests.journeys import product as live_product
from tests.oracles import rbs_checksum
from tests.production import production

scenario = pytest.mark.scenario

SECRET = "test-secret-key-" + "x" * 32
CSRF_REFUSAL = "This form has expired or was sent from elsewhere"
STAFF_EMAIL = "operator@example.com"
STAFF_PASSWORD = "correct horse battery staple"
RBS_CALLBACK_KEY = "sandbox-callback-key"  # the sandbox's, as in storefront.config


# Helpers ---------------------------------------------------------------------------------------
def new_app(tmp_path, **overrides):
    """A shop on its own SQLite file (or ``DATABASE_URL``), with no live gateway."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}",
            "SANDBOX": False,
            "RATELIMIT_ENABLED": False,
            **overrides,
        }
    )
    with app.app_context():
        db.create_all()
    return app


page = Page.from_test_client


def csrf_token(client) -> str:
    return page(client.get("/order/lookup")).form("/order/lookup").fields["csrf_token"]


def make_order(
    number: str,
    *,
    state: str = OrderState.PENDING_PAYMENT,
    attempt: str | None = AttemptState.REDIRECTED,
    gateway: str = "rbs",
    email: str = "ann@example.com",
    total: int = 1250,
    product: Product | None = None,
) -> Order:
    """An order of one line with one payment attempt (unless ``attempt`` is None); call inside
    an app context."""
    order = Order(
        number=number,
        receipt_token=new_token(),
        email=email,
        name="Ann Example",
        address="1 Main Street",
        city="Dublin",
        postcode="D01 F5P2",
        country="IE",
        currency="EUR",
        total=total,
        state=state,
        payment_due_by=now_utc() + timedelta(hours=1),
        lines=[
            OrderLine(
                product_id=product.id if product else None,
                name="House Blend",
                unit_price=total,
                quantity=1,
            )
        ],
        events=[OrderEvent(to_state=OrderState.PENDING_PAYMENT, note="order placed")],
    )
    db.session.add(order)
    db.session.flush()
    if attempt is not None:
        money = total if attempt in (AttemptState.AUTHORIZED, AttemptState.PAID) else 0
        db.session.add(
            PaymentAttempt(
                order_id=order.id,
                seq=1,
                gateway=gateway,
                reference=f"{number}_1" if gateway == "rbs" else f"{number}-1",
                token=new_token(),
                gateway_id=f"gw-{number}",
                state=attempt,
                amount=total,
                currency="EUR",
                authorized=money,
                captured=money if attempt == AttemptState.PAID else 0,
            )
        )
    db.session.commit()
    db.session.refresh(order)
    _ = order.attempts  # loaded, to be read after the app context is gone
    return order


def make_staff(app) -> None:
    with app.app_context():
        user = StaffUser(email=STAFF_EMAIL, name="Olive Operator")
        user.set_password(STAFF_PASSWORD)
        db.session.add(user)
        db.session.commit()


def sign_in(client) -> None:
    form = page(client.get("/admin/sign-in")).form("/admin/sign-in")
    response = client.post(
        "/admin/sign-in", data={**form.fields, "email": STAFF_EMAIL, "password": STAFF_PASSWORD}
    )
    assert response.status_code == 303, response.get_data(as_text=True)


@pytest.fixture
def shop(app):
    """The ``app`` shop with a product, a staff account and orders in several states."""
    with app.app_context():
        product = make_product(name="House Blend", price=1250, stock=10)
        orders = SimpleNamespace(
            product_id=product.id,
            slug=product.slug,
            category=product.category.slug,
            pending=make_order("10000001", product=product).number,
            declined=make_order("10000002", attempt=AttemptState.DECLINED).number,
            held=make_order(
                "10000003", state=OrderState.AUTHORIZED, attempt=AttemptState.AUTHORIZED
            ).number,
            paid=make_order("10000004", state=OrderState.PAID, attempt=AttemptState.PAID).number,
            altapay=make_order("10000005", gateway="altapay").number,
        )
    make_staff(app)
    app.config["WTF_CSRF_ENABLED"] = True  # the default, said out loud: these tests are about it
    return orders


def order_row(app, number: str) -> Order:
    with app.app_context():
        order = db.session.execute(select(Order).where(Order.number == number)).scalar_one()
        _ = (order.attempts, order.lines)
        db.session.expunge_all()
        return order


def stored(app) -> dict:
    """Everything a request could change in the database, in a comparable form."""
    with app.app_context():
        rows = {
            "orders": db.session.execute(
                select(Order.number, Order.state, Order.name).order_by(Order.id)
            ).all(),
            "attempts": db.session.execute(
                select(
                    PaymentAttempt.id,
                    PaymentAttempt.state,
                    PaymentAttempt.captured,
                    PaymentAttempt.refunded,
                    PaymentAttempt.action,
                    PaymentAttempt.returned_at,
                ).order_by(PaymentAttempt.id)
            ).all(),
            "stock": db.session.execute(
                select(Product.id, Product.stock).order_by(Product.id)
            ).all(),
            "staff": db.session.execute(select(StaffUser.email, StaffUser.last_login_at)).all(),
            "evidence": db.session.execute(select(func.count(PaymentEvent.id))).scalar_one(),
            "history": db.session.execute(select(func.count(OrderEvent.id))).scalar_one(),
            "outbox": db.session.execute(select(func.count(OutboxMessage.id))).scalar_one(),
        }
        db.session.remove()
        return rows


def session_of(client) -> dict:
    """The visitor's session, less what showing any page may add or take: the messages shown
    once, and the CSRF secret (created when a page holds a form)."""
    with client.session_transaction() as session:
        return {k: v for k, v in session.items() if k not in ("_flashes", "csrf_token")}


def csp(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {words[0]: words[1:] for words in directives}


# Headers ---------------------------------------------------------------------------------------
def _responses(client, shop) -> dict:
    """One response of every kind the shop gives."""
    token = csrf_token(client)
    with client.application.app_context():
        rbs = db.session.execute(
            select(PaymentAttempt).join(Order).where(Order.number == shop.pending)
        ).scalar_one()
        reference, gateway_id = rbs.reference, rbs.gateway_id
    # A form field over MAX_FORM_MEMORY_SIZE (500 KB), encoded in memory here.
    boundary, huge_form = encode_multipart({"csrf_token": token, "number": "1" * 600_000})
    return {
        "html page": client.get("/"),
        "product page": client.get(f"/p/{shop.slug}"),
        "404 page": client.get("/no/such/page"),
        "405 page": client.get("/cart/add"),
        "400 csrf page": client.post("/cart/add", data={"product_id": shop.product_id}),
        "400 form page": client.post("/cart/remove", data={"csrf_token": token}),
        "redirect": client.get("/admin/"),
        "303 after a form": client.post(
            "/cart/add", data={"csrf_token": token, "product_id": shop.product_id, "quantity": 1}
        ),
        "callback answer": client.post(
            "/pay/rbs/callback/notification",
            data={"mdOrder": gateway_id, "orderNumber": reference, "checksum": "0" * 64},
        ),
        "callback 404": client.post("/pay/altapay/callback/nosuchkind"),
        "verify-order answer": client.post("/pay/altapay/verify-order", data={"shop_orderid": "1"}),
        "static file": client.get("/static/css/shop.css"),
        "413 page": client.post(
            "/order/lookup",
            data=huge_form,
            content_type=f"multipart/form-data; boundary={boundary}",
        ),
    }


def test_every_kind_of_response_carries_the_security_headers(client, shop):
    responses = _responses(client, shop)
    for response in responses.values():
        response.close()  # the static file's
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses["404 page"] == 404 and statuses["405 page"] == 405
    assert statuses["400 csrf page"] == 400 and statuses["redirect"] == 302
    assert statuses["callback answer"] == 400 and statuses["303 after a form"] == 303
    assert statuses["413 page"] == 413
    for name, response in responses.items():
        policy = csp(response)
        assert policy.get("script-src") == ["'none'"], name
        assert policy.get("object-src") == ["'none'"], name
        assert policy.get("base-uri") == ["'none'"], name
        assert policy.get("frame-ancestors") == ["'none'"], name
        assert "'self'" in policy.get("form-action", []), name
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert response.headers.get("Referrer-Policy"), name
        assert "Strict-Transport-Security" not in response.headers, name  # http://


def test_a_body_over_one_megabyte_is_refused_unread_with_a_clear_answer(app, client, shop):
    before = stored(app)
    for path in ("/pay/rbs/callback/notification", "/pay/altapay/callback/ok", "/checkout/place"):
        response = client.post(
            path,
            data=b"checksum=" + b"A" * (1024 * 1024),
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 413, path
        assert "The request was too large." in response.text
    assert stored(app) == before


def test_form_action_allows_self_and_the_configured_gateways_only(tmp_path):
    app = new_app(
        tmp_path,
        GATEWAYS="rbs,altapay",
        RBS_URL="https://rbs.gateway.example/payment/rest/",
        ALTAPAY_URL="https://altapay.gateway.example:8443/merchant/API/",
        INTERPAY_URL="https://interpay.gateway.example/svra/",
    )
    targets = csp(app.test_client().get("/"))["form-action"]
    assert sorted(targets) == [
        "'self'",
        "https://altapay.gateway.example:8443",
        "https://rbs.gateway.example",
    ]
    # A gateway that is not offered (InterPay here) is no place to send a form to.
    assert "https://interpay.gateway.example" not in targets

    only_rbs = new_app(
        tmp_path / "rbs",
        GATEWAYS="rbs",
        RBS_URL="https://rbs.gateway.example/payment/rest/",
        ALTAPAY_URL="https://altapay.gateway.example/merchant/API/",
    )
    targets = csp(only_rbs.test_client().get("/no/such/page"))["form-action"]
    assert sorted(targets) == ["'self'", "https://rbs.gateway.example"]


def test_hsts_only_when_the_public_url_is_https(tmp_path):
    plain = new_app(tmp_path, PUBLIC_URL="http://shop.example")
    secure = new_app(tmp_path / "https", PUBLIC_URL="https://shop.example")
    for path in ("/", "/no/such/page", "/cart/add"):
        assert "Strict-Transport-Security" not in plain.test_client().get(path).headers
        hsts = secure.test_client().get(path).headers.get("Strict-Transport-Security", "")
        age = re.search(r"max-age=(\d+)", hsts)
        assert age and int(age.group(1)) >= 180 * 24 * 3600, path


@pytest.mark.parametrize(
    "public_url, secure", [("http://shop.example", False), ("https://shop.example", True)]
)
def test_session_cookie_is_httponly_lax_and_secure_only_on_https(tmp_path, public_url, secure):
    app = new_app(tmp_path, PUBLIC_URL=public_url)
    with app.app_context():
        product = make_product()
        product_id = product.id
    client = app.test_client()
    base = public_url.replace("shop.example", "localhost")  # as the browser reaches the shop
    first = client.get("/order/lookup", base_url=base)  # a form: the CSRF secret is kept
    token = page(first).form("/order/lookup").fields["csrf_token"]
    added = client.post(
        "/cart/add",
        data={"csrf_token": token, "product_id": product_id},
        base_url=base,
        headers={"Referer": f"{base}/order/lookup"},  # on https, CSRF checks the referrer too
    )
    assert added.status_code == 303
    for response in (first, added):
        cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
        assert len(cookies) == 1
        attributes = {a.strip().split("=")[0].lower(): a for a in cookies[0].split(";")[1:]}
        assert "httponly" in attributes
        assert attributes["samesite"].strip().lower() == "samesite=lax"
        assert ("secure" in attributes) is secure


# CSRF ------------------------------------------------------------------------------------------
def _with_cart(client, shop) -> str:
    token = csrf_token(client)
    response = client.post(
        "/cart/add", data={"csrf_token": token, "product_id": shop.product_id, "quantity": 2}
    )
    assert response.status_code == 303
    return token


def _with_details(client, shop) -> str:
    token = _with_cart(client, shop)
    response = client.post("/checkout/", data={"csrf_token": token, "gateway": "rbs", **CUSTOMER})
    assert response.status_code == 303, response.get_data(as_text=True)
    return token


def _attempt_id(app, number: str) -> int:
    with app.app_context():
        return db.session.execute(
            select(PaymentAttempt.id).join(Order).where(Order.number == number)
        ).scalar_one()


def _form_cases(app, client, shop) -> dict:
    """Each shop form: how to get the browser ready for it, and the POST it makes (URL, data)."""
    held = _attempt_id(app, shop.held)
    paid = _attempt_id(app, shop.paid)
    pending = _attempt_id(app, shop.pending)
    declined = order_row(app, shop.declined)
    item = {"product_id": shop.product_id}
    return {
        "cart add": (None, "/cart/add", {**item, "quantity": 1}),
        "cart update": (_with_cart, "/cart/update", {**item, "quantity": 5}),
        "cart remove": (_with_cart, "/cart/remove", item),
        "checkout details": (_with_cart, "/checkout/", {"gateway": "rbs", **CUSTOMER}),
        "place order": (_with_details, "/checkout/place", {"checkout_key": "k" * 32}),
        "order lookup": (
            None,
            "/order/lookup",
            {"number": shop.pending, "email": CUSTOMER["email"]},
        ),
        "try again": (None, f"/order/{declined.receipt_token}/pay", {"gateway": "rbs"}),
        "admin sign-in": (
            None,
            "/admin/sign-in",
            {"email": STAFF_EMAIL, "password": STAFF_PASSWORD},
        ),
        "admin sign-out": (sign_in, "/admin/sign-out", {}),
        "admin capture": (
            sign_in,
            f"/admin/orders/{shop.held}/payments/{held}/capture",
            {f"capture-{held}-amount": "12.50"},
        ),
        "admin void": (sign_in, f"/admin/orders/{shop.held}/payments/{held}/void", {}),
        "admin refund": (
            sign_in,
            f"/admin/orders/{shop.paid}/payments/{paid}/refund",
            {f"refund-{paid}-amount": "1.00"},
        ),
        "admin check": (sign_in, f"/admin/orders/{shop.pending}/payments/{pending}/check", {}),
        "admin ask gateway": (sign_in, f"/admin/reconciliation/{pending}/ask", {}),
        "admin reconcile": (sign_in, f"/admin/reconciliation/{pending}/check", {}),
    }


FORMS = [
    "cart add",
    "cart update",
    "cart remove",
    "checkout details",
    "place order",
    "order lookup",
    "try again",
    "admin sign-in",
    "admin sign-out",
    "admin capture",
    "admin void",
    "admin refund",
    "admin check",
    "admin ask gateway",
    "admin reconcile",
]


@pytest.mark.parametrize("form", FORMS)
def test_every_shop_form_refuses_a_post_without_a_valid_token_and_changes_nothing(
    app, client, shop, form
):
    assert app.config.get("WTF_CSRF_ENABLED", True) is True
    prepare, url, data = _form_cases(app, client, shop)[form]
    if prepare is not None:
        prepare(client, *([shop] if prepare is not sign_in else []))
    foreign = csrf_token(app.test_client())  # a real token, of another visitor's session
    for token in (None, "", "not-a-token", foreign):
        before, session_before = stored(app), session_of(client)
        sent = dict(data) if token is None else {**data, "csrf_token": token}
        response = client.post(url, data=sent)
        assert response.status_code == 400, (form, token, response.status_code)
        assert CSRF_REFUSAL in response.get_data(as_text=True), (form, token)
        assert stored(app) == before, (form, token)
        assert session_of(client) == session_before, (form, token)


def test_the_same_forms_work_with_their_token(app, client, shop):
    """The counterpart of the test above: with the token, each form does its job."""
    token = _with_details(client, shop)
    assert session_of(client)["checkout"]["email"] == CUSTOMER["email"]
    found = client.post(
        "/order/lookup",
        data={"csrf_token": token, "number": shop.pending, "email": CUSTOMER["email"]},
    )
    assert found.status_code == 303
    assert found.headers["Location"].endswith(order_row(app, shop.pending).receipt_token)
    signed = client.post(
        "/admin/sign-in",
        data={"csrf_token": token, "email": STAFF_EMAIL, "password": STAFF_PASSWORD},
    )
    assert signed.status_code == 303 and "staff" in session_of(client)


@scenario(
    "A gateway callback or return carries no CSRF token → verified by its checksum or the "
    "gateway's word and processed, never refused as a forged form",
    gateway="rbs",
)
def test_gateway_callbacks_and_returns_are_exempt_from_csrf(app, client, shop):
    rbs = order_row(app, shop.pending).attempts[0]
    altapay = order_row(app, shop.altapay).attempts[0]
    answers = {
        "rbs callback": client.post(
            "/pay/rbs/callback/notification",
            data={
                "mdOrder": rbs.gateway_id,
                "orderNumber": rbs.reference,
                "operation": "deposited",
                "status": "1",
                "checksum": "0" * 64,
            },
        ),
        "altapay notification": client.post(
            "/pay/altapay/callback/notification",
            data={"shop_orderid": altapay.reference, "status": "succeeded"},
        ),
        "rbs return": client.post(f"/pay/rbs/return/{rbs.token}", data={"orderId": "bad id <>"}),
    }
    for name, response in answers.items():
        text = response.get_data(as_text=True)
        assert response.status_code == 400, (name, text)
        assert CSRF_REFUSAL not in text, name
    assert "checksum missing or wrong" in answers["rbs callback"].get_data(as_text=True)
    assert "checksum missing or wrong" in answers["altapay notification"].get_data(as_text=True)
    assert "malformed" in answers["rbs return"].get_data(as_text=True)
    verify = client.post(
        "/pay/altapay/verify-order",
        data={"shop_orderid": altapay.reference, "amount": "12.50", "currency": "EUR"},
    )
    assert verify.status_code == 200 and verify.get_data(as_text=True) == "OKAY"
    # Each refusal was made by the adapter, and kept in the attempt's evidence.
    with app.app_context():
        refused = db.session.execute(
            select(PaymentEvent.summary).where(PaymentEvent.summary.contains("refused"))
        ).scalars()
        assert sorted(s.split(":")[0] for s in refused) == [
            "browser return refused",
            "callback notification refused",  # BPC/RBS: one notification page
            "callback notification refused",
        ]


@scenario(
    "A callback with a checksum that is not ASCII (é…, \\x80) → refused as a wrong checksum "
    "and kept as evidence, not a 500; nothing is paid",
    gateway="rbs",
)
@pytest.mark.parametrize("checksum", ["é" * 64, "\x80", "Ж", "０" * 32, "\U0001f600"])
def test_a_callback_with_a_non_ascii_checksum_is_refused_not_a_500(app, client, shop, checksum):
    rbs = order_row(app, shop.pending).attempts[0]
    altapay = order_row(app, shop.altapay).attempts[0]
    before = stored(app)
    answers = [
        client.post(
            "/pay/rbs/callback/notification",
            data={
                "mdOrder": rbs.gateway_id,
                "orderNumber": rbs.reference,
                "operation": "deposited",
                "status": "1",
                "checksum": checksum,
            },
        ),
        client.post(
            f"/pay/rbs/callback/notification?mdOrder={rbs.gateway_id}&orderNumber={rbs.reference}"
            f"&checksum={quote(checksum)}"
        ),
        client.post(
            "/pay/altapay/callback/notification",
            data={
                "shop_orderid": altapay.reference,
                "status": "succeeded",
                "amount": "12.50",
                "currency": "EUR",
                "checksum": checksum,
            },
        ),
    ]
    for response in answers:
        assert response.status_code == 400, response.get_data(as_text=True)
        assert "checksum missing or wrong" in response.get_data(as_text=True)
    after = stored(app)
    assert after.pop("evidence") == before.pop("evidence") + 3 + 3  # each kept, and refused
    assert after == before


def signed_rbs_callback(attempt: PaymentAttempt, **values) -> dict:
    params = {"mdOrder": attempt.gateway_id, "orderNumber": attempt.reference, **values}
    return {**params, "checksum": rbs_checksum(params, RBS_CALLBACK_KEY)}


@scenario(
    "A signed BPC/RBS callback arrives over HTTP without any CSRF token → answered OK, the "
    "gateway is asked, an unpaid order stays unpaid",
    gateway="rbs",
)
def test_a_signed_callback_without_csrf_token_is_processed(shop_live):
    shop, attempt = shop_live
    callback = signed_rbs_callback(attempt, operation="deposited", status="1")
    response = requests.post(f"{shop.url}/pay/rbs/callback/notification", data=callback, timeout=10)
    assert response.status_code == 200 and response.text == "OK\n"
    with shop.db() as session:
        kinds = session.execute(
            select(PaymentEvent.kind, PaymentEvent.summary).where(
                PaymentEvent.attempt_id == attempt.id
            )
        ).all()
    assert ("callback", "callback deposited") in kinds  # read and kept as evidence
    assert any(k == "request" and "getOrderStatusExtended" in s for k, s in kinds)
    order, attempts = latest_order(shop)
    assert order.state == OrderState.PENDING_PAYMENT  # the gateway's word, not the callback's
    assert attempts[0].state in (AttemptState.REDIRECTED, AttemptState.PENDING)


@pytest.fixture
def shop_live(make_shop):
    """A live shop with one order handed to the sandbox's BPC/RBS page and not paid."""
    shop = make_shop()
    _, slug = live_product(shop)
    to_gateway(shop, Browser(), slug)
    _, attempts = latest_order(shop)
    return shop, attempts[0]


# Receipt tokens --------------------------------------------------------------------------------
TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")  # base64url: 6 random bits a character


@scenario(
    "Receipt and return links of real orders → at least 128 random bits each, never reused",
    gateway="rbs",
)
def test_receipt_and_return_tokens_carry_at_least_128_random_bits(make_shop, sandbox):
    shop = make_shop()
    _, slug = live_product(shop, stock=10)
    for _ in range(3):
        to_gateway(shop, Browser(), slug)
    with shop.db() as session:
        receipts = session.execute(select(Order.receipt_token)).scalars().all()
        returns = session.execute(select(PaymentAttempt.token)).scalars().all()
    tokens = receipts + returns
    assert len(receipts) == 3 and len(returns) == 3
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert TOKEN.match(token), token
        assert len(token) * 6 >= 128, token
    # The generator itself: base64url of 24 random bytes, never the same twice.
    made = {new_token() for _ in range(1000)}
    assert len(made) == 1000 and all(len(t) == 32 and TOKEN.match(t) for t in made)


def _same_answer(response, reference, what: str) -> None:
    assert response.status_code == reference.status_code == 404, what
    assert response.headers["Content-Type"] == reference.headers["Content-Type"], what
    assert response.text == reference.text, what


@scenario(
    "A wrong, truncated, extended or other kind of token in an order or return link → the "
    "same 404 page as a link that never existed",
    gateway="rbs",
)
def test_any_wrong_order_link_gets_one_uniform_404(shop_live):
    shop, attempt = shop_live
    order, _ = latest_order(shop)
    token = order.receipt_token
    http = requests.Session()
    http.get(f"{shop.url}/order/lookup", timeout=10)  # the same visitor (cookie) throughout

    def get(path: str):
        return http.get(shop.url + path, timeout=10, allow_redirects=False)

    assert get(f"/order/{token}").status_code == 200  # the right link works
    nowhere = secrets.token_urlsafe(24)
    wrong = [
        secrets.token_urlsafe(24),  # a wrong token
        token[:-1],  # truncated
        token[:16],
        token + "A",  # extended
        token.swapcase(),
        attempt.token,  # a real token, of another kind (the attempt's)
        "x" * 15,  # too short to be any token
        "x" * 65,  # too long
    ]
    for kind, reference in (
        ("order", get(f"/order/{nowhere}")),
        ("resume", get(f"/order/{nowhere}/pay")),
    ):
        for bad in wrong:
            path = f"/order/{bad}" + ("/pay" if kind == "resume" else "")
            _same_answer(get(path), reference, path)
    reference = get(f"/pay/rbs/return/{nowhere}")
    for path in (
        f"/pay/rbs/return/{token}",  # the order's token where the attempt's belongs
        f"/pay/rbs/return/{attempt.token[:-1]}",
        f"/pay/altapay/return/{attempt.token}",  # another gateway's return for this attempt
        f"/pay/interpay/return/{attempt.token}",
        f"/pay/nosuch/return/{attempt.token}",
    ):
        _same_answer(get(path), reference, path)
    with shop.db() as session:
        assert session.get(Order, order.id).state == OrderState.PENDING_PAYMENT
        assert session.get(PaymentAttempt, attempt.id).returned_at is None


def _lookup_page(client, token: str, number: str, email: str):
    response = client.post(
        "/order/lookup", data={"csrf_token": token, "number": number, "email": email}
    )
    # The form shows back what was typed, and a fresh CSRF token: take those out to compare.
    text = re.sub(r'\svalue="[^"]*"', "", response.get_data(as_text=True))
    return response.status_code, text


def test_order_lookup_gives_the_same_answer_for_any_mismatch(app, client, shop):
    with app.app_context():
        make_order("20000001", email="bob@example.com", attempt=None)
    token = csrf_token(client)
    right = (shop.pending, "ann@example.com")
    found = client.post(
        "/order/lookup", data={"csrf_token": token, "number": right[0], "email": right[1]}
    )
    assert found.status_code == 303  # the right pair finds it
    answers = {
        "wrong email": _lookup_page(client, token, right[0], "eve@example.com"),
        "wrong number": _lookup_page(client, token, "99999999", right[1]),
        "both wrong": _lookup_page(client, token, "99999999", "eve@example.com"),
        "another order's email": _lookup_page(client, token, right[0], "bob@example.com"),
        "another order's number": _lookup_page(client, token, "20000001", right[1]),
    }
    statuses = {status for status, _ in answers.values()}
    bodies = {text for _, text in answers.values()}
    assert statuses == {200}
    assert len(bodies) == 1, list(answers)
    assert "We could not find an order with these details." in bodies.pop()


# Production configuration ----------------------------------------------------------------------
def test_a_complete_production_configuration_starts(postgres_database):
    app = create_app(production(DATABASE_URL=postgres_database))
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    response = app.test_client().get("/order/lookup", base_url="https://shop.example")
    assert response.status_code == 200
    assert "Strict-Transport-Security" in response.headers
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"SECRET_KEY": DEV_SECRET_KEY}, "STOREFRONT_SECRET_KEY"),
        ({"SECRET_KEY": ""}, "STOREFRONT_SECRET_KEY"),
        ({"SECRET_KEY": "s" * 31}, "STOREFRONT_SECRET_KEY"),
        ({"PUBLIC_URL": "http://shop.example"}, "STOREFRONT_PUBLIC_URL must be https"),
        ({"SANDBOX": True}, "STOREFRONT_SANDBOX must be off"),
        ({"RBS_URL": ""}, "STOREFRONT_RBS_URL points at the sandbox"),
        (
            {"RBS_URL": "https://shop.example/sandbox/rbs/payment/rest/"},
            "STOREFRONT_RBS_URL points at the sandbox",
        ),
        (
            {"SANDBOX_URL": "https://pay.example", "ALTAPAY_URL": "https://pay.example/API/"},
            "STOREFRONT_ALTAPAY_URL points at the sandbox",
        ),
        ({"INTERPAY_URL": ""}, "STOREFRONT_INTERPAY_URL points at the sandbox"),
        ({"RBS_CALLBACK_KEY": ""}, "STOREFRONT_RBS_CALLBACK_KEY must be set"),
        ({"RBS_CALLBACK_KEY": RBS_CALLBACK_KEY}, "STOREFRONT_RBS_CALLBACK_KEY must be set"),
        ({"ALTAPAY_SECRET": ""}, "STOREFRONT_ALTAPAY_SECRET must be set"),
        ({"RBS_USERNAME": ""}, "STOREFRONT_RBS_USERNAME must be set"),
        ({"RBS_PASSWORD": "sandbox-password"}, "STOREFRONT_RBS_PASSWORD must be set"),
        ({"ALTAPAY_PASSWORD": ""}, "STOREFRONT_ALTAPAY_PASSWORD must be set"),
        ({"INTERPAY_TERMID": ""}, "STOREFRONT_INTERPAY_TERMID must be set"),
        ({"INTERPAY_PASS": ""}, "STOREFRONT_INTERPAY_PASS must be set"),
        ({"GATEWAYS": "rbs,paypal"}, "STOREFRONT_GATEWAYS"),
        ({"CURRENCY": "XYZ"}, "STOREFRONT_CURRENCY"),
    ],
)
def test_production_refuses_to_start_with_an_unsafe_setting(overrides, named):
    with pytest.raises(ConfigError) as refused:
        create_app(production(**overrides))
    assert named in str(refused.value)


def test_production_lists_every_problem_at_once():
    with pytest.raises(ConfigError) as refused:
        create_app(production(SECRET_KEY="", SANDBOX=True, ALTAPAY_SECRET=""))
    message = str(refused.value)
    for named in ("SECRET_KEY", "SANDBOX", "ALTAPAY_SECRET"):
        assert f"STOREFRONT_{named}" in message


def test_a_gateway_that_is_not_offered_needs_no_credentials():
    app = create_app(production(GATEWAYS="rbs", ALTAPAY_SECRET="", INTERPAY_PASS=""))
    assert app.config["GATEWAYS"] == ["rbs"]


# Rate limits -----------------------------------------------------------------------------------
PLACE_LIMIT, CALLBACK_LIMIT, LOOKUP_LIMIT = 20, 600, 30


def _order_count(app) -> int:
    with app.app_context():
        count = db.session.execute(select(func.count(Order.id))).scalar_one()
        db.session.remove()
        return count


@scenario(
    "One address places orders beyond the limit (20 a minute) → a clear 429 page and no "
    "order; another address still places its order",
    gateway="rbs",
)
def test_placing_orders_beyond_the_limit_gets_a_429_and_makes_no_order(make_shop, sandbox):
    # One customer may hold this many unpaid items: the rate limit is what is tried here.
    shop = make_shop(RATELIMIT_ENABLED=True, CUSTOMER_MAX_UNPAID_UNITS=1000)
    _, slug = live_product(shop, stock=1000)
    # A browser with a cart and details, ready to place: its cookie is replayed, each time
    # with a new checkout key of its own in it, so that every request not refused makes a new
    # order.
    ready = shop.app.test_client()
    form = page(ready.get(f"/p/{slug}")).form("/cart/add")
    assert ready.post("/cart/add", data=form.fields).status_code == 303
    ready.post("/checkout/", data={**form.fields, "gateway": "rbs", **CUSTOMER})
    token = page(ready.get("/checkout/review")).form("/checkout/place").fields["csrf_token"]

    def place(address: str, n: int):
        key = f"key-{address.replace('.', '-')}-{n:04d}"
        with ready.session_transaction() as session:
            session["checkout_key"] = key
        cookie = ready.get_cookie("session").value
        client = shop.app.test_client(use_cookies=False)
        return client.post(
            "/checkout/place",
            data={"csrf_token": token, "checkout_key": key},
            headers={"Cookie": f"session={cookie}"},
            environ_base={"REMOTE_ADDR": address},
        )

    placed = 0
    refused = None
    # Fixed windows: within 2 × limit + 1 requests one window holds more than the limit.
    for n in range(2 * PLACE_LIMIT + 1):
        before = _order_count(shop.app)
        response = place("203.0.113.7", n)
        if response.status_code == 429:
            refused = response
            assert _order_count(shop.app) == before  # no order for a refused request
            break
        assert response.status_code == 303, response.get_data(as_text=True)
        assert response.headers["Location"].startswith(sandbox.url)  # to the gateway
        placed += 1
        assert _order_count(shop.app) == before + 1
    assert refused is not None, "never limited"
    assert PLACE_LIMIT <= placed <= 2 * PLACE_LIMIT
    text = refused.get_data(as_text=True)
    assert "Too many requests" in text and "Please wait a moment" in text
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "script-src 'none'" in refused.headers["Content-Security-Policy"]

    other = place("203.0.113.8", 0)  # the limit is per client address
    assert other.status_code == 303
    assert _order_count(shop.app) == placed + 1


def _until_limited(send, limit: int):
    """Send until answered 429 (at most 2 × limit + 1 times); the answers."""
    answers = []
    for _ in range(2 * limit + 1):
        answers.append(send())
        if answers[-1].status_code == 429:
            break
    return answers


def test_callbacks_beyond_the_limit_get_429(tmp_path):
    app = new_app(tmp_path, RATELIMIT_ENABLED=True)
    gateway = app.test_client()
    answers = _until_limited(
        lambda: gateway.post(
            "/pay/rbs/callback/notification",
            data={"mdOrder": "x", "orderNumber": "1_1"},
            environ_base={"REMOTE_ADDR": "198.51.100.1"},
        ),
        CALLBACK_LIMIT,
    )
    assert answers[-1].status_code == 429
    assert CALLBACK_LIMIT <= len(answers) - 1 <= 2 * CALLBACK_LIMIT
    assert {a.status_code for a in answers[:-1]} == {400}  # each was read and answered
    assert answers[-1].get_data(as_text=True).startswith("429 Too many requests")
    assert answers[-1].headers["Content-Type"].startswith("text/plain")
    altapay = gateway.post(
        "/pay/altapay/verify-order", environ_base={"REMOTE_ADDR": "198.51.100.1"}
    )
    assert altapay.status_code == 429  # one budget for all callbacks of an address
    other = gateway.post(
        "/pay/rbs/callback/notification",
        data={"mdOrder": "x", "orderNumber": "1_1"},
        environ_base={"REMOTE_ADDR": "198.51.100.2"},
    )
    assert other.status_code == 400


def test_order_lookup_beyond_the_limit_gets_429_even_with_the_right_details(tmp_path):
    app = new_app(tmp_path, RATELIMIT_ENABLED=True)
    with app.app_context():
        order = make_order("30000001", attempt=None)
        number, receipt = order.number, order.receipt_token
    guesser = app.test_client()
    token = csrf_token(guesser)

    def lookup(client, address, email="eve@example.com", **headers):
        return client.post(
            "/order/lookup",
            data={"csrf_token": token, "number": number, "email": email},
            environ_base={"REMOTE_ADDR": address},
            headers=headers,
        )

    answers = _until_limited(lambda: lookup(guesser, "192.0.2.1"), LOOKUP_LIMIT)
    assert answers[-1].status_code == 429
    assert {a.status_code for a in answers[:-1]} == {200}
    assert "Too many requests" in answers[-1].get_data(as_text=True)
    # Right details change nothing now, and a forged proxy header is not another address.
    again = lookup(
        guesser, "192.0.2.1", email="ann@example.com", **{"X-Forwarded-For": "192.0.2.9"}
    )
    assert again.status_code == 429 and receipt not in again.headers.get("Location", "")
    other = lookup(guesser, "192.0.2.2", email="ann@example.com")
    assert other.status_code == 303 and other.headers["Location"].endswith(receipt)


# Bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("product_id", ["abc", "1.5", "", "-1", "0", "9" * 30, "1 OR 1=1", None])
def test_a_product_id_that_is_not_a_product_is_a_400_and_changes_nothing(
    app, client, shop, product_id
):
    token = _with_cart(client, shop)
    before, cart = stored(app), session_of(client)["cart"]
    for url in ("/cart/add", "/cart/update", "/cart/remove"):
        data = {"csrf_token": token, "quantity": "1"}
        if product_id is not None:
            data["product_id"] = product_id
        response = client.post(url, data=data)
        assert response.status_code == 400, url
        assert "not in our catalogue" in response.get_data(as_text=True), url
    assert stored(app) == before and session_of(client)["cart"] == cart


@pytest.mark.parametrize("quantity", ["-1", "0", str(10**12), "abc", "1e3", "", "1.5"])
def test_a_bad_quantity_is_refused_with_a_message_and_changes_nothing(app, client, shop, quantity):
    token = _with_cart(client, shop)
    before, cart = stored(app), session_of(client)["cart"]
    for url in ("/cart/add", "/cart/update"):
        data = {"csrf_token": token, "product_id": shop.product_id, "quantity": quantity}
        if url == "/cart/update" and quantity == "0":
            continue  # 0 is how a line is removed
        response = client.post(url, data=data, follow_redirects=True)
        assert response.status_code == 200, url
        assert "Choose a quantity from" in response.get_data(as_text=True), url
    assert stored(app) == before and session_of(client)["cart"] == cart


@pytest.mark.parametrize("value", ["-1", "0", "99999", "x", "1e3", "%00", "9" * 40])
def test_a_bad_page_number_is_a_clear_404(client, shop, value):
    for path in (f"/c/{shop.category}?page={value}", f"/search?q=house&page={value}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "There is nothing here" in response.get_data(as_text=True), path
    assert client.get(f"/c/{shop.category}?page=1").status_code == 200


@pytest.mark.parametrize("query", ["house" * 2048, "house\x00blend", "\x00" * 10, "%00"])
def test_search_with_a_huge_or_nul_query_is_a_plain_page(client, shop, query):
    response = client.get("/search", query_string={"q": query})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "House Blend" in text or "No products match" in text or "Type a product" in text


def test_an_unknown_country_or_gateway_keeps_the_details_page(app, client, shop):
    token = _with_cart(client, shop)
    for field, value in (
        ("country", "XX"),
        ("country", "zz"),
        ("country", ""),
        ("gateway", "paypal"),
        ("gateway", ""),
    ):
        response = client.post(
            "/checkout/", data={"csrf_token": token, "gateway": "rbs", **CUSTOMER, field: value}
        )
        assert response.status_code == 200, (field, value)
        assert 'role="alert"' in response.get_data(as_text=True), (field, value)
        assert "checkout" not in session_of(client), (field, value)


@pytest.mark.parametrize("field", ["name", "address", "city", "postcode"])
def test_control_characters_in_checkout_details_are_refused_with_a_message(client, shop, field):
    token = _with_cart(client, shop)
    for text in ("Ann\x00", "\x00", "1 Main\tStreet", "two\r\nlines", "\x1b[31m"):
        response = client.post(
            "/checkout/", data={"csrf_token": token, "gateway": "rbs", **CUSTOMER, field: text}
        )
        assert response.status_code == 200, text
        assert "Please remove the tabs, line breaks or other control characters." in (
            response.get_data(as_text=True)
        ), text
        assert "checkout" not in session_of(client), text  # not kept for the order


def test_a_currency_or_price_slipped_into_checkout_changes_nothing(make_shop, sandbox):
    shop = make_shop()
    _, slug = live_product(shop, price=1250)
    browser = Browser()
    browser.get(f"{shop.url}/p/{slug}")
    browser.submit(browser.page.form("/cart/add"), quantity=1, price=1, currency="XYZ")
    browser.get(f"{shop.url}/checkout/")
    details = browser.page.form("/checkout/")
    review = browser.submit(details, gateway="rbs", currency="XYZ", total="1", **CUSTOMER)
    assert "Review your order" in review
    browser.submit(review.form("/checkout/place"), currency="XYZ", amount="1")
    order, attempts = latest_order(shop)
    assert (order.currency, order.total) == ("EUR", 1250)
    assert (attempts[0].currency, attempts[0].amount) == ("EUR", 1250)


def test_verify_order_with_an_unknown_currency_or_amount_is_refused(app, client, shop):
    attempt = order_row(app, shop.altapay).attempts[0]
    for amount, currency in (("12.50", "XYZ"), ("12.50", ""), ("abc", "EUR"), ("1e9", "EUR")):
        response = client.post(
            "/pay/altapay/verify-order",
            data={"shop_orderid": attempt.reference, "amount": amount, "currency": currency},
        )
        # Not an amount or not a currency: a clear 400, never OKAY (the gateway then stops).
        assert response.status_code == 400
        assert "malformed" in response.get_data(as_text=True)


# NUL bytes: PostgreSQL refuses them in text, SQLite keeps them ---------------------------------
def values_of(order: Order) -> SimpleNamespace:
    """What the test needs of an order and its attempt, readable once the session is gone."""
    attempt = order.attempts[0]
    return SimpleNamespace(
        number=order.number,
        receipt_token=order.receipt_token,
        attempts=[
            SimpleNamespace(
                token=attempt.token, gateway_id=attempt.gateway_id, reference=attempt.reference
            )
        ],
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database_shop(request, tmp_path):
    url, admin = database_url(request.param, tmp_path)
    app = new_app(tmp_path, DATABASE_URL=url)
    with app.app_context():
        product = make_product(name="House Blend", price=1250, stock=10)
        orders = SimpleNamespace(
            app=app,
            slug=product.slug,
            product_id=product.id,
            rbs=values_of(make_order("40000001", product=product)),
            altapay=values_of(make_order("40000002", gateway="altapay")),
            paid=values_of(
                make_order("40000003", state=OrderState.PAID, attempt=AttemptState.PAID)
            ),
        )
    make_staff(app)
    yield orders
    with app.app_context():
        db.engine.dispose()
    if admin:
        drop_database(admin, url)


def test_a_nul_byte_anywhere_is_refused_never_a_500(any_database_shop):
    shop = any_database_shop
    app = shop.app
    client = app.test_client()
    token = _with_cart(client, SimpleNamespace(product_id=shop.product_id))
    rbs, altapay = shop.rbs.attempts[0], shop.altapay.attempts[0]
    nul = "\x00"
    before = stored(app)
    gets = [
        f"/p/{shop.slug}%00",
        "/c/%00",
        f"/order/{shop.rbs.receipt_token}%00",
        f"/order/{shop.rbs.receipt_token[:-1]}%00/pay",
        f"/pay/rbs/return/{rbs.token[:-1]}%00",
        f"/pay/rbs/return/{rbs.token}?orderId=%00",
        f"/pay/rbs/callback/notification?mdOrder={rbs.gateway_id}&orderNumber={rbs.reference}%00",
        f"/pay/rbs/callback/notification?mdOrder={rbs.gateway_id}&orderNumber={rbs.reference}&operation=%00",
        "/search?q=%00",
    ]
    posts = [
        ("/cart/add", {"product_id": f"{shop.product_id}{nul}", "quantity": "1"}),
        ("/cart/update", {"product_id": str(shop.product_id), "quantity": f"1{nul}"}),
        ("/checkout/", {"gateway": "rbs", **CUSTOMER, "name": f"Ann{nul}"}),
        ("/checkout/", {"gateway": "rbs", **CUSTOMER, "address": nul}),
        ("/checkout/", {"gateway": f"rbs{nul}", **CUSTOMER}),
        ("/checkout/place", {"checkout_key": "k" * 20 + nul}),
        ("/order/lookup", {"number": f"{shop.rbs.number}{nul}", "email": "ann@example.com"}),
        ("/order/lookup", {"number": shop.rbs.number, "email": f"ann@example.com{nul}"}),
        ("/admin/sign-in", {"email": f"{STAFF_EMAIL}{nul}", "password": STAFF_PASSWORD}),
        ("/admin/sign-in", {"email": STAFF_EMAIL, "password": f"wrong{nul}{STAFF_PASSWORD}"}),
        (
            "/pay/rbs/callback/notification",
            {"mdOrder": rbs.gateway_id, "orderNumber": f"{rbs.reference}{nul}"},
        ),
        (
            "/pay/rbs/callback/notification",
            {"mdOrder": rbs.gateway_id, "orderNumber": rbs.reference, "operation": nul},
        ),
        ("/pay/altapay/callback/ok", {"shop_orderid": altapay.reference, "status": nul}),
        ("/pay/altapay/callback/notification", {"shop_orderid": nul}),
        ("/pay/altapay/verify-order", {"shop_orderid": f"{altapay.reference}{nul}"}),
        (f"/pay/rbs/return/{rbs.token}", {"orderId": nul}),
        (f"/order/{shop.rbs.receipt_token}/pay", {"gateway": nul}),
    ]
    for path in gets:
        response = client.get(path)
        assert response.status_code < 500, path
    for path, data in posts:
        response = client.post(path, data={"csrf_token": token, **data})
        assert response.status_code < 500, (path, data)
        visitor = session_of(client)
        assert "checkout" not in visitor, (path, data)  # details with a NUL were not taken
        assert "staff" not in visitor and visitor["cart"] == {str(shop.product_id): 2}
    after = stored(app)
    assert after.pop("evidence") >= before.pop("evidence")  # refused callbacks are kept
    assert after == before
    # And signed in, the operator's pages too.
    sign_in(client)
    for path in (f"/admin/orders/{shop.paid.number}%00", "/admin/orders?q=%00"):
        assert client.get(path).status_code < 500, path
