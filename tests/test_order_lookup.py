"""Order lookup takes the references the gateways' pages show the customer."""

import pytest

from storefront.orders.views import order_number_of


@pytest.mark.parametrize(
    "typed",
    ["92768608", "92768608_1", "92768608-1", " 9276 8608-2 ", "Order 92768608_1", "order92768608"],
)
def test_a_gateway_reference_names_its_order(typed):
    assert order_number_of(typed) == "92768608"


@pytest.mark.parametrize("typed", ["", "abc", "92768608_", "9276-8608-1"])
def test_anything_else_names_no_order(typed):
    assert order_number_of(typed) == ""
