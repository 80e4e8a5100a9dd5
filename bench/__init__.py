"""Benchmarks for the shop: ``python -m bench`` (or ``make bench``) prints Markdown tables.

The shop runs as production runs it (gunicorn with the Procfile's settings) on a throw-away
database seeded with a catalogue of 1,000 products, with the sandbox gateway in a gunicorn of
its own; load comes from wrk (or a Python load generator where wrk is not installed), and a bare
Flask app under the same settings is the yardstick. Nothing here is a test: it asserts nothing
and no time is checked by ``make test``.

Modules: ``servers`` (processes, databases, ports), ``seed`` (the catalogue), ``load`` (wrk and
the Python load generator), ``shopper`` (checkouts, paid orders, signed callbacks), ``queries``
(SQL statements per page), ``bare`` (the yardstick app), ``machine`` and ``report`` (output).
"""
