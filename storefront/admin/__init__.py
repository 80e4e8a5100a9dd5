"""The operator's side (/admin): staff accounts and sign-in, the orders list, one order with its
payments' evidence, capture / void / refund, the payments still open, the catalogue and its
stock, and the staff with their roles.

``views`` holds the order and payment pages, ``auth`` who may see and do what, ``queries`` what
they read, ``operations`` the checks with a gateway, ``cli`` the ``flask create-admin``
command. ``catalogue`` (with ``catalogue_forms`` and ``catalogue_service``) holds the product,
category and stock pages, ``images`` the pictures' checks and their route; ``staff`` (with
``staff_forms`` and ``staff_service``) the staff and account pages, ``twofactor`` the one-time
codes, ``audit`` the record of who changed what. ``dashboard`` is the front page's figures,
``export`` the orders list as CSV, ``notes`` (with ``order_service``) the order page's notes and
its second sending of the confirmation, ``fulfilment`` the dispatch.
"""
