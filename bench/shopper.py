"""Customers over real HTTP: carts, checkouts ready to be placed, paid orders, signed callbacks.

A checkout is prepared the way a person makes one (product page, add to cart, details, review:
four requests, CSRF tokens read from the pages) and is left one click from placing the order.
Preparation is not timed; placing is: ``POST /checkout/place`` freezes the cart into an order,
reserves stock, registers the payment with the gateway and answers 303 to the gateway's page.
"""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from bench.load import Stats, stats_from
from bench.pyload import Connection
from bench.servers import SANDBOX_CONTROL_TOKEN
from storefront.config import SETTINGS
from storefront.gateways.rbs import checksum

TIMEOUT = 30  # seconds, for every request made while preparing
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CUSTOMER = {
    "email": "ann@example.com",
    "name": "Ann Example",
    "address": "1 Main Street",
    "city": "Dublin",
    "postcode": "D01 F5P2",
    "country": "IE",
    "terms": "y",
    "gateway": "rbs",
}
CONTROL = {"X-Sandbox-Control": SANDBOX_CONTROL_TOKEN}  # the sandbox's control API asks for it
CARD = {"pan": "4111111111111111", "expiry": "12/34", "cvc": "123", "cardholder": "Ann Example"}


class _Inputs(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name"):
            self.values.setdefault(attrs["name"], attrs.get("value") or "")


def inputs(html: str) -> dict[str, str]:
    """The first value of every named ``<input>`` of a page (hidden tokens included)."""
    parser = _Inputs()
    parser.feed(html)
    return parser.values


def _expect(response: requests.Response, *statuses: int) -> requests.Response:
    if response.status_code not in statuses:
        raise RuntimeError(
            f"{response.request.method} {response.url} answered {response.status_code}, "
            f"not {statuses}: {response.text[:500]}"
        )
    return response


def cookie_header(http: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def fill_cart(http: requests.Session, shop: str, slugs: list[str]) -> str:
    """Add one of each product to the session's cart; the session's CSRF token."""
    for slug in slugs:
        page = inputs(_expect(http.get(f"{shop}/p/{slug}", timeout=TIMEOUT), 200).text)
        form = {k: page[k] for k in ("csrf_token", "product_id")} | {"quantity": "1"}
        added = http.post(f"{shop}/cart/add", data=form, allow_redirects=False, timeout=TIMEOUT)
        _expect(added, 303)
    return page["csrf_token"]


def cart_cookie(shop: str, slugs: list[str]) -> str:
    """The ``Cookie`` header of a customer whose cart holds one of each of ``slugs``.

    The cart is read once, which uses up the "Added …" messages: from then on the cart page
    sends no new cookie, and every request of the benchmark sees the same cart.
    """
    with requests.Session() as http:
        fill_cart(http, shop, slugs)
        _expect(http.get(f"{shop}/cart/", timeout=TIMEOUT), 200)
        return cookie_header(http)


@dataclass
class Checkout:
    """A customer on the review page: the order is one POST away."""

    cookie: str
    form: str  # the urlencoded body of the "Continue to secure payment" form


def prepare(shop: str, slug: str) -> Checkout:
    with requests.Session() as http:
        return Checkout(*_to_review(http, shop, slug))


def _to_review(http: requests.Session, shop: str, slug: str) -> tuple[str, str]:
    # One CSRF token serves every form of a session: the product page's is used for the details.
    # A customer of their own: the shop bounds what one customer's unpaid orders may hold.
    customer = {**CUSTOMER, "email": f"ann.{secrets.token_hex(6)}@example.com"}
    details = {"csrf_token": fill_cart(http, shop, [slug]), **customer}
    _expect(
        http.post(f"{shop}/checkout/", data=details, allow_redirects=False, timeout=TIMEOUT), 303
    )
    review = inputs(_expect(http.get(f"{shop}/checkout/review", timeout=TIMEOUT), 200).text)
    form = urlencode({k: review[k] for k in ("csrf_token", "checkout_key")})
    return cookie_header(http), form


def prepare_many(shop: str, slugs: list[str], count: int, workers: int = 8) -> list[Checkout]:
    """``count`` checkouts, prepared ``workers`` at a time, each buying one of ``slugs`` in
    turn (orders of different products, as most concurrent orders are)."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda n: prepare(shop, slugs[n % len(slugs)]), range(count)))


class OrderLoad:
    """Place prepared orders from ``connections`` threads, each over its own keep-alive
    connection, until the checkouts or the time run out (or ``stop`` is called).

    Each placement must answer 303 to the gateway's page at ``gateway``; anything else is an
    error. Latency is measured from sending the request to the end of the answer.
    """

    def __init__(self, shop: str, gateway: str, checkouts: list[Checkout], connections: int):
        self.shop, self.gateway = shop, gateway
        self.checkouts = list(checkouts)
        self.connections = connections
        self.latencies: list[float] = []
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, seconds: float) -> OrderLoad:
        self._began = time.monotonic()
        self._deadline = self._began + seconds
        self._threads = [threading.Thread(target=self._work) for _ in range(self.connections)]
        for thread in self._threads:
            thread.start()
        return self

    def _next(self) -> Checkout | None:
        with self._lock:
            if self._stop.is_set() or time.monotonic() >= self._deadline or not self.checkouts:
                return None
            return self.checkouts.pop()

    def _work(self) -> None:
        conn = Connection(self.shop, timeout=TIMEOUT)
        while (checkout := self._next()) is not None:
            headers = {**FORM, "Cookie": checkout.cookie}
            began = time.perf_counter()
            try:
                status, answer, _ = conn.request("POST", "/checkout/place", checkout.form, headers)
            except OSError:
                status, answer = 0, {}
            elapsed = (time.perf_counter() - began) * 1000
            ok = status == 303 and answer.get("location", "").startswith(self.gateway)
            with self._lock:
                self.latencies.append(elapsed)
                self.errors += 0 if ok else 1
        conn.close()

    def wait(self) -> Stats:
        """Wait for every thread (bounded by the deadline plus a request's timeout)."""
        for thread in self._threads:
            thread.join(timeout=max(0.0, self._deadline - time.monotonic()) + TIMEOUT + 5)
        return stats_from(self.latencies, time.monotonic() - self._began, self.errors)

    def stop(self) -> Stats:
        """Place no more orders; wait for those under way."""
        self._stop.set()
        return self.wait()


# A paid order, and its gateway's callback ------------------------------------------------------
def paid_order(shop: str, sandbox: str, slug: str) -> tuple[str, str]:
    """Place an order and pay it on the sandbox's page with an approving card.

    Returns the gateway's ``(mdOrder, orderNumber)`` of the paid payment.
    """
    with requests.Session() as http:
        _, form = _to_review(http, shop, slug)
        placed = http.post(
            f"{shop}/checkout/place",
            data=parse_qs(form),
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        form_url = _expect(placed, 303).headers["Location"]
        md_order = parse_qs(urlsplit(form_url).query)["mdOrder"][0]
        receipt = http.post(form_url, data={"action": "pay", **CARD}, timeout=TIMEOUT)
        if "your payment was received" not in _expect(receipt, 200).text:
            raise RuntimeError(f"the order was not paid: {receipt.url}")
        state = _expect(
            requests.get(f"{sandbox}/__state", headers=CONTROL, timeout=TIMEOUT), 200
        ).json()
    order = next(o for o in state["rbs_order"] if o["id"] == md_order)
    return md_order, order["orderNumber"]


def paid_orders(shop: str, sandbox: str, slug: str, count: int, workers: int = 4):
    """``count`` paid orders, as ``paid_order`` makes them, ``workers`` at a time."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: paid_order(shop, sandbox, slug), range(count)))


def signed_callback(md_order: str, order_number: str) -> str:
    """The urlencoded body of the gateway's "deposited" callback, signed with the shop's key."""
    params = {
        "mdOrder": md_order,
        "orderNumber": order_number,
        "operation": "deposited",
        "status": "1",
    }
    params["checksum"] = checksum(params, SETTINGS["RBS_CALLBACK_KEY"].default)
    return urlencode(params)


# The sandbox's control API ---------------------------------------------------------------------
def delay_register(sandbox: str, seconds: float) -> None:
    """Make the gateway answer every registration after ``seconds`` (until ``clear_faults``)."""
    body = {
        "gateway": "rbs",
        "op": "register",
        "fault": "delay",
        "count": 1_000_000,
        "params": {"seconds": seconds},
    }
    requests.post(
        f"{sandbox}/__control/faults", json=body, headers=CONTROL, timeout=TIMEOUT
    ).raise_for_status()


def clear_faults(sandbox: str) -> None:
    requests.delete(
        f"{sandbox}/__control/faults", headers=CONTROL, timeout=TIMEOUT
    ).raise_for_status()
