"""Property tests (Hypothesis): arbitrary input to every shop form and to every gateway callback
and return endpoint never gets a 5xx, and no fuzzed callback or return pays an unpaid order or
takes a paid one back.

One live shop (all three gateways, in CAD as a real InterPay terminal charges) talks to the live
sandbox over HTTP for the whole module, with a paid and an unpaid order on each gateway. The
fuzzed requests reach the shop through Flask's test client (its own request parsing, routing and
error pages, without a socket per example); every question the shop then asks a gateway goes
over real HTTP to the sandbox.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.test import encode_multipart

from storefront import create_app
from storefront.extensions import db
from storefront.orders.models import Order, OrderState
from storefront.payments.models import AttemptState, PaymentAttempt
from tests.browser import Browser, Page
from tests.conftest import LiveShop, SandboxControl, shop_config
from tests.journeys import (
    CUSTOMER,
    latest_order,
    pay_altapay,
    pay_interpay,
    pay_rbs,
    product,
    to_gateway,
)
from tests.oracles import altapay_checksum, rbs_checksum
from tests.servers import LiveServer

scenario = pytest.mark.scenario

RBS_CALLBACK_KEY = "sandbox-callback-key"  # the sandbox's demo secrets, as the shop is set up
ALTAPAY_SECRET = "sandbox-shared-secret"

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI failures reproduce
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# The live shop, with a paid and an unpaid order on each gateway --------------------------------
PAY = {"rbs": pay_rbs, "altapay": pay_altapay, "interpay": pay_interpay}


def _attempt_values(shop) -> SimpleNamespace:
    order, attempts = latest_order(shop)
    attempt = attempts[-1]
    return SimpleNamespace(
        order_id=order.id,
        receipt_token=order.receipt_token,
        number=order.number,
        attempt_id=attempt.id,
        token=attempt.token,
        reference=attempt.reference,
        gateway_id=attempt.gateway_id,
        amount=attempt.amount,
    )


@pytest.fixture(scope="module")
def live(sandbox_server, tmp_path_factory):
    SandboxControl(sandbox_server.url).reset()
    folder = tmp_path_factory.mktemp("fuzz")
    server = LiveServer()
    app = create_app(
        shop_config(
            folder,
            server.url,
            sandbox_server.url,
            GATEWAYS="rbs,altapay,interpay",
            CURRENCY="CAD",
            ALTAPAY_CAPTURE=True,
            INSTANCE_PATH=str(folder),
        )
    )
    with app.app_context():
        db.create_all()
    server.app = app
    server.start()
    shop = LiveShop(app, server.url)
    try:
        product_id, slug = product(shop, price=1250, stock=100_000)
        paid, unpaid = {}, {}
        for gateway, pay in PAY.items():
            browser = Browser()
            to_gateway(shop, browser, slug, gateway=gateway)
            assert "Thank you, your payment was received" in pay(browser)
            paid[gateway] = _attempt_values(shop)
            to_gateway(shop, Browser(), slug, gateway=gateway)
            unpaid[gateway] = _attempt_values(shop)
        ready = _ready_session(app, slug)
        yield SimpleNamespace(
            app=app,
            shop=shop,
            product_id=product_id,
            paid=paid,
            unpaid=unpaid,
            attempts=[*paid.values(), *unpaid.values()],
            **vars(ready),
        )
    finally:
        server.stop()
        SandboxControl(sandbox_server.url).reset()


def _ready_session(app, slug: str) -> SimpleNamespace:
    """A visitor's session with a cart and checkout details, on the review page: its cookie,
    replayed as it is, lets each example start from the same place."""
    client = app.test_client()

    def page(path: str) -> Page:
        return Page.from_test_client(client.get(path))

    form = page(f"/p/{slug}").form("/cart/add")
    assert client.post("/cart/add", data=form.fields).status_code == 303
    details = {**form.fields, "gateway": "rbs", **CUSTOMER}
    assert client.post("/checkout/", data=details).status_code == 303
    place = page("/checkout/review").form("/checkout/place")
    return SimpleNamespace(
        cookie=client.get_cookie("session").value,
        csrf_token=place.fields["csrf_token"],
        checkout_key=place.fields["checkout_key"],
    )


def client_of(live, with_session: bool = True):
    client = live.app.test_client()
    if with_session:
        client.set_cookie("session", live.cookie)
    return client


def assert_money_unchanged(live) -> None:
    """Paid orders are still paid, and unpaid ones are not paid."""
    with live.shop.db() as session:
        for values in live.paid.values():
            order = session.get(Order, values.order_id)
            attempt = session.get(PaymentAttempt, values.attempt_id)
            assert order.state == OrderState.PAID, (order.number, order.state)
            assert attempt.state == AttemptState.PAID, (attempt.reference, attempt.state)
            assert attempt.captured == values.amount and attempt.refunded == 0
        for values in live.unpaid.values():
            order = session.get(Order, values.order_id)
            assert order.state == OrderState.PENDING_PAYMENT, (order.number, order.state)
            states = session.execute(
                select(PaymentAttempt.state, PaymentAttempt.captured).where(
                    PaymentAttempt.order_id == order.id
                )
            ).all()
            for state, captured in states:
                assert state not in (AttemptState.PAID, AttemptState.AUTHORIZED), state
                assert captured == 0


# Strategies -----------------------------------------------------------------------------------
NASTY = [
    "",
    " ",
    "0",
    "-1",
    "1.5",
    "1e308",
    "NaN",
    "-0",
    "99999999999999999999",
    "١٢",
    "１２",
    "\x00",
    "a\x00b",
    "%00",
    "\r\n",
    "\t",
    '\'; DROP TABLE "order"; --',
    "<script>alert(1)</script>",
    "../../../etc/passwd",
    "{{7*7}}",
    "null",
    "[]",
    "\u202e",
    "\U0001f600",
    "\ufeff",
]
texts = st.one_of(
    st.text(max_size=30),  # any Unicode, NUL and control characters included
    st.sampled_from(NASTY),
    st.integers().map(str),
    st.floats().map(str),
    # Huge: up to half a megabyte of UTF-8 in one field.
    st.builds(
        lambda unit, times: unit * times,
        st.sampled_from(["a", "9", "é", "\x00", "\U0001f600", "<x>"]),
        st.integers(min_value=1_000, max_value=120_000),
    ),
)
names = st.one_of(st.text(max_size=12), st.sampled_from(["csrf_token", "", "a[b]", "x" * 300]))
printable_ascii = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=utf-16",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "multipart/form-data; boundary=",
    "application/json",
    "text/xml",
    "text/plain",
    "application/octet-stream",
    "",
]


TIMES = [1, 1, 1, 0, 2]  # how often a known field is sent: mostly once, else missing or twice


@st.composite
def fields(draw, known: dict[str, st.SearchStrategy]):
    """Form fields from scratch: each known field missing, once or twice (with a likely or any
    value), in any order, plus a few unknown ones."""
    pairs = []
    for name, likely in known.items():
        for _ in range(draw(st.sampled_from(TIMES))):
            pairs.append((name, draw(st.one_of(likely, likely, texts))))
    pairs += draw(st.lists(st.tuples(names, texts), max_size=3))
    return draw(st.permutations(pairs))


@st.composite
def mutated(draw, valid: list[tuple[str, str]]):
    """A valid request's fields with up to three things changed: a value replaced by anything,
    a field dropped, a field sent twice (the odd value first), an unknown one added. Deep code
    is reached only by input that is nearly right."""
    pairs = list(valid)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        how = draw(st.sampled_from(["replace", "replace", "drop", "twice", "extra"]))
        if how == "extra" or not pairs:
            pairs.append((draw(names), draw(texts)))
            continue
        i = draw(st.integers(min_value=0, max_value=len(pairs) - 1))
        if how == "replace":
            pairs[i] = (pairs[i][0], draw(texts))
        elif how == "drop":
            del pairs[i]
        else:
            pairs.insert(i, (pairs[i][0], draw(texts)))
    return pairs


def payloads(valid: list[tuple[str, str]], known: dict[str, st.SearchStrategy]):
    """Fields nearly right, or made up from scratch."""
    return st.one_of(mutated(valid), mutated(valid), fields(known))


def bodies(pairs: st.SearchStrategy) -> st.SearchStrategy:
    """A POST body: the fields url-encoded or as multipart, or any bytes with any content type."""
    raw = st.tuples(
        st.just("raw"),
        st.one_of(st.binary(max_size=2_000), pairs.map(lambda p: urlencode(p).encode())),
        st.one_of(st.sampled_from(CONTENT_TYPES), printable_ascii),
    )
    return st.one_of(
        st.tuples(st.just("form"), pairs),
        st.tuples(st.just("form"), pairs),
        st.tuples(st.just("multipart"), pairs),
        raw,
    )


def send(client, method: str, path: str, body):
    """Send ``body`` (from ``bodies``, or a list of pairs for a GET's query string)."""
    if method == "GET":
        return client.get(path, query_string=urlencode(body))
    kind, *content = body
    if kind == "raw":
        data, content_type = content
        return client.post(path, data=data, content_type=content_type)
    pairs = content[0]
    if kind == "multipart":
        # Encoded here, in memory: the test client would spool a big body to a file it never
        # closes.
        boundary, data = encode_multipart(MultiDict(pairs))
        return client.post(
            path, data=data, content_type=f"multipart/form-data; boundary={boundary}"
        )
    return client.post(path, data=MultiDict(pairs))


def assert_answered(response, what) -> None:
    assert response.status_code < 500, (what, response.status_code, response.get_data()[:500])
    response.close()


def first_values(pairs) -> dict:
    """What the shop reads of repeated fields: the first value of each."""
    first: dict = {}
    for name, value in pairs:
        first.setdefault(name, value)
    return first


def in_path(text: str) -> str:
    return quote(text[:200], safe="")


def likely(*values) -> st.SearchStrategy:
    return st.sampled_from([v for v in values if v])


# Shop forms ----------------------------------------------------------------------------------
FORMS = ["cart add", "cart update", "cart remove", "details", "place", "lookup", "sign-in", "pay"]


def _form(live, name: str) -> tuple[str, list[tuple[str, str]], dict[str, st.SearchStrategy]]:
    """A form's URL, the fields of a valid submission, and likely values of each field."""
    product_id, unpaid = str(live.product_id), live.unpaid["rbs"]
    emails = [CUSTOMER["email"], "operator@example.com", "a@b"]
    forms = {
        "cart add": ("/cart/add", {"product_id": product_id, "quantity": "1"}),
        "cart update": ("/cart/update", {"product_id": product_id, "quantity": "2"}),
        "cart remove": ("/cart/remove", {"product_id": product_id}),
        "details": ("/checkout/", {**CUSTOMER, "gateway": "interpay"}),
        "place": ("/checkout/place", {"checkout_key": live.checkout_key}),
        "lookup": ("/order/lookup", {"number": unpaid.number, "email": CUSTOMER["email"]}),
        "sign-in": (
            "/admin/sign-in",
            {"email": "operator@example.com", "password": "x" * 12, "next": "/admin/orders"},
        ),
        "pay": (f"/order/{unpaid.receipt_token}/pay", {"gateway": "rbs"}),
    }
    path, valid = forms[name]
    valid = {"csrf_token": live.csrf_token, **valid}
    known = {key: st.just(value) for key, value in valid.items()}
    for key, values in (
        ("product_id", [product_id, "1", "0", "2147483648"]),
        ("quantity", ["1", "99", "100", "0", "-1"]),
        ("email", emails),
        ("gateway", ["rbs", "altapay", "interpay", "paypal"]),
        ("country", ["IE", "CA", "XX", "ie"]),
    ):
        if key in known:
            known[key] = st.sampled_from(values)
    return path, list(valid.items()), known


@pytest.mark.parametrize("form", FORMS)
def test_any_input_to_a_shop_form_gets_an_answer_never_a_5xx(live, form):
    path, valid, known = _form(live, form)

    @FUZZ
    @given(body=bodies(payloads(valid, known)), with_session=st.booleans())
    def check(body, with_session):
        response = send(client_of(live, with_session), "POST", path, body)
        assert_answered(response, (form, body))

    check()
    assert_money_unchanged(live)


@pytest.mark.parametrize(
    "path",
    ["/", "/search", "/cart/", "/checkout/", "/checkout/review", "/order/lookup", "/admin/sign-in"],
)
def test_any_query_string_on_a_page_gets_an_answer_never_a_5xx(live, path):
    valid = [("q", "house"), ("page", "1")]
    known = {"q": texts, "page": st.sampled_from(["1", "2", "0", "-1"]), "next": texts}

    @FUZZ
    @given(query=payloads(valid, known), with_session=st.booleans())
    def check(query, with_session):
        assert_answered(send(client_of(live, with_session), "GET", path, query), (path, query))

    check()


# Gateway callbacks and returns ------------------------------------------------------------------
GATEWAY_FUZZ = settings(FUZZ, max_examples=200)


def one_of_ours(live, gateway: str) -> st.SearchStrategy:
    """Mostly an attempt of ``gateway`` (paid or not), sometimes one of another gateway's."""
    own = [live.paid[gateway], live.unpaid[gateway]]
    return st.one_of(st.sampled_from(own), st.sampled_from(own), st.sampled_from(live.attempts))


def url_token(attempt) -> st.SearchStrategy:
    """The attempt's return token; or its order's token, a cut or extended one, or anything."""
    return st.one_of(
        st.just(attempt.token),
        st.just(attempt.token),
        st.sampled_from([attempt.receipt_token, attempt.token[:-1], attempt.token + "A"]),
        texts,
    )


@st.composite
def returns(draw, live, gateway: str):
    """A browser return about one attempt (mostly): method, path and what it carries."""
    attempt = draw(one_of_ours(live, gateway))
    other = draw(st.sampled_from(live.attempts))
    ids = likely(attempt.gateway_id, attempt.gateway_id, other.gateway_id)
    if gateway == "rbs":
        valid = [("orderId", attempt.gateway_id), ("lang", "en")]
        known = {"orderId": ids, "mdOrder": ids}
    else:  # InterPay: SecureID and Status, in whatever case the gateway writes them
        statuses = st.sampled_from(["0000", "9015", "1001", "000", "paid"])
        valid = [("SecureID", attempt.gateway_id), ("Status", draw(statuses))]
        known = {"SecureID": ids, "SECUREID": ids, "secureid": ids, "Status": statuses}
    path = f"/pay/{gateway}/return/{in_path(draw(url_token(attempt)))}"
    method = draw(st.sampled_from(["GET", "POST"]))
    pairs = payloads(valid, known)
    return method, path, draw(pairs if method == "GET" else bodies(pairs))


@scenario(
    "BPC/RBS return: fuzzed tokens, orderId and bodies, by GET and POST → never a 5xx; "
    "the paid order stays paid and the unpaid one is not paid",
    gateway="rbs",
)
def test_fuzzed_rbs_returns_never_change_who_paid(live):
    @GATEWAY_FUZZ
    @given(request=returns(live, "rbs"))
    def check(request):
        method, path, payload = request
        assert_answered(send(client_of(live, False), method, path, payload), request)
        assert_money_unchanged(live)

    check()


@scenario(
    "InterPay return: fuzzed tokens, SecureID and Status in any case, by GET and POST → never "
    "a 5xx; the paid order stays paid and the unpaid one is not paid",
    gateway="interpay",
)
def test_fuzzed_interpay_returns_never_change_who_paid(live):
    @GATEWAY_FUZZ
    @given(request=returns(live, "interpay"))
    def check(request):
        method, path, payload = request
        assert_answered(send(client_of(live, False), method, path, payload), request)
        assert_money_unchanged(live)

    check()


def checksums(length: int) -> st.SearchStrategy:
    """Wrong checksums: of the right length, in hex or not, ASCII or not, or anything."""
    return st.one_of(
        texts,
        st.text("0123456789abcdefABCDEF", min_size=length, max_size=length),
        st.text(st.characters(min_codepoint=128), min_size=1, max_size=length),
    )


@st.composite
def rbs_callbacks(draw, live):
    """A callback about one attempt (mostly), nearly right or made up, then signed with the
    shop's key as the gateway would, or unsigned, or with a wrong checksum: a callback never
    decides (the status query does), so even a signed one must not pay or unpay anything."""
    attempt = draw(one_of_ours(live, "rbs"))
    other = draw(st.sampled_from(live.attempts))
    operations = ["deposited", "approved", "reversed", "refunded", "declinedByTimeout"]
    valid = [
        ("mdOrder", attempt.gateway_id),
        ("orderNumber", attempt.reference),
        ("operation", draw(st.sampled_from(operations))),
        ("status", draw(st.sampled_from(["1", "0"]))),
    ]
    known = {
        "mdOrder": likely(attempt.gateway_id, other.gateway_id),
        "orderNumber": likely(attempt.reference, other.reference),
        "operation": st.sampled_from(operations),
        "status": st.sampled_from(["0", "1"]),
    }
    pairs = draw(payloads(valid, known))
    signing = draw(st.sampled_from(["signed", "unsigned", "forged"]))
    if signing == "signed":
        pairs = [p for p in pairs if p[0] != "checksum"]
        pairs.append(("checksum", rbs_checksum(first_values(pairs), RBS_CALLBACK_KEY)))
    elif signing == "forged":
        pairs.insert(0, ("checksum", draw(checksums(64))))
    return pairs


@scenario(
    "BPC/RBS callback: fuzzed fields, signed or not, by GET and POST → never a 5xx; only the "
    "gateway's status query decides, so nothing is paid or unpaid",
    gateway="rbs",
)
def test_fuzzed_rbs_callbacks_never_change_who_paid(live):
    @GATEWAY_FUZZ
    @given(
        method=st.sampled_from(["GET", "POST"]),
        encoding=st.sampled_from(["form", "multipart"]),
        pairs=rbs_callbacks(live),
    )
    def check(method, encoding, pairs):
        payload = pairs if method == "GET" else (encoding, pairs)
        response = send(client_of(live, False), method, "/pay/rbs/callback/notification", payload)
        assert_answered(response, (method, pairs))
        assert_money_unchanged(live)

    check()


GARBAGE_XML = st.one_of(
    texts,
    st.sampled_from(
        [
            "",
            "<",
            "<APIResponse/>",
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;&a;</x>',
            '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><APIResponse>&e;</APIResponse>',
            "<APIResponse><Body><Transactions><Transaction/></Transactions></Body></APIResponse>",
        ]
    ),
)


def forged_success(reference: str) -> str:
    """What a forger would post: a well-formed "captured" result for our order (unsigned)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?><APIResponse version="20170228"><Header>'
        "<ErrorCode>0</ErrorCode><ErrorMessage/></Header><Body><Result>Success</Result>"
        "<Transactions><Transaction><TransactionId>1</TransactionId><PaymentId>p-1</PaymentId>"
        f"<ShopOrderId>{reference}</ShopOrderId><TransactionStatus>captured</TransactionStatus>"
        "<MerchantCurrency>124</MerchantCurrency><MerchantCurrencyAlpha>CAD</MerchantCurrencyAlpha>"
        "<ReservedAmount>12.50</ReservedAmount><CapturedAmount>12.50</CapturedAmount>"
        "<RefundedAmount>0.00</RefundedAmount></Transaction></Transactions></Body></APIResponse>"
    )


@st.composite
def altapay_callbacks(draw, live):
    """A result callback about one attempt (mostly). Signed ones (with the shared secret, as the
    gateway signs) carry only garbage xml: a well-formed signed result *is* the gateway's word;
    a well-formed result with a wrong or no checksum is a forgery."""
    attempt = draw(one_of_ours(live, "altapay"))
    signing = draw(st.sampled_from(["signed", "unsigned", "forged"]))
    forged = st.just(forged_success(attempt.reference))
    xml = GARBAGE_XML if signing == "signed" else st.one_of(GARBAGE_XML, forged, forged)
    amounts = st.sampled_from(["12.50", "0.01", "1250"])
    currencies = st.sampled_from(["CAD", "124", "EUR", "XYZ"])
    statuses = st.sampled_from(["succeeded", "failed", "error", "cancelled", "open"])
    valid = [
        ("shop_orderid", attempt.reference),
        ("payment_id", attempt.gateway_id),
        ("transaction_id", "1"),
        ("status", draw(statuses)),
        ("amount", "12.50"),
        ("currency", "CAD"),
        ("xml", draw(xml)),
    ]
    known = {
        "shop_orderid": likely(attempt.reference),
        "payment_id": likely(attempt.gateway_id, "x"),
        "status": statuses,
        "amount": amounts,
        "currency": currencies,
        "xml": xml,
    }
    pairs = draw(payloads(valid, known))
    if signing == "signed":
        first = first_values(pairs)
        signed = {name: first.get(name, "") for name in ("amount", "currency", "shop_orderid")}
        digest = altapay_checksum(signed, ALTAPAY_SECRET)
        pairs = [p for p in pairs if p[0] != "checksum"] + [("checksum", digest)]
    elif signing == "forged":
        pairs.insert(0, ("checksum", draw(checksums(32))))
    return pairs


@scenario(
    "AltaPay callbacks (ok, fail, open, notification): fuzzed fields and xml, unsigned, "
    "forged or signed over garbage → never a 5xx; nothing is paid or unpaid",
    gateway="altapay",
)
def test_fuzzed_altapay_callbacks_never_change_who_paid(live):
    kinds = st.one_of(st.sampled_from(["ok", "fail", "open", "notification"]), texts)

    @GATEWAY_FUZZ
    @given(kind=kinds, pairs=altapay_callbacks(live), multipart=st.booleans())
    def check(kind, pairs, multipart):
        path = f"/pay/altapay/callback/{in_path(kind)}"
        body = ("multipart" if multipart else "form", pairs)
        assert_answered(send(client_of(live, False), "POST", path, body), (path, pairs))
        assert_money_unchanged(live)

    check()


def test_fuzzed_altapay_verify_order_always_answers_and_changes_nothing(live):
    attempt = live.unpaid["altapay"]
    valid = [("shop_orderid", attempt.reference), ("amount", "12.50"), ("currency", "CAD")]
    known = {
        "shop_orderid": st.sampled_from([a.reference for a in live.attempts]),
        "amount": st.sampled_from(["12.50", "12.5", "1250", "-12.50"]),
        "currency": st.sampled_from(["CAD", "124", "EUR", "cad"]),
    }

    @FUZZ
    @given(body=bodies(payloads(valid, known)))
    def check(body):
        response = send(client_of(live, False), "POST", "/pay/altapay/verify-order", body)
        # 400: an amount or a currency that is not one; 413: a body over the gateway limit.
        assert response.status_code in (200, 400, 413), body
        if response.status_code == 200:
            assert response.headers["Content-Type"].startswith("text/plain")
        response.close()
        assert_money_unchanged(live)

    check()


def test_any_body_to_any_gateway_endpoint_gets_an_answer_never_a_5xx(live):
    tokens = [a.token for a in live.attempts]
    endpoints = [
        "/pay/rbs/callback/notification",
        *(f"/pay/altapay/callback/{kind}" for kind in ("ok", "fail", "open", "notification")),
        "/pay/altapay/verify-order",
        *(f"/pay/{g}/return/{t}" for g, t in itertools.product(("rbs", "interpay"), tokens)),
    ]
    known = {"orderId": texts, "mdOrder": texts, "shop_orderid": texts, "SecureID": texts}

    @FUZZ
    @given(path=st.sampled_from(endpoints), body=bodies(fields(known)))
    def check(path, body):
        assert_answered(send(client_of(live, False), "POST", path, body), (path, body))
        assert_money_unchanged(live)

    check()
