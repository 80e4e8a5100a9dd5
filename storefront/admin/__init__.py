"""The operator's side (/admin): staff accounts and sign-in, the orders list, one order with its
payments' evidence, capture / void / refund, and the payments still open.

``views`` holds the pages, ``auth`` who may see them, ``queries`` what they read, ``operations``
the checks with a gateway, ``cli`` the ``flask create-admin`` command.
"""
