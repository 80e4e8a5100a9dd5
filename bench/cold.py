"""What a page costs when the page cache cannot answer it: the first view after a change of the
catalogue, or a page nobody has asked for in a while.

The shop runs in this process (Flask's test client) on the benchmark's database; before each
request its page cache is emptied, so the page is rendered from the database every time. Each
page is requested ``ROUNDS`` times; the median and the slowest but one are reported, in
milliseconds of this process's time (the servers are idle meanwhile).
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

from bench.queries import pages, shopper_client
from bench.seed import local_app

ROUNDS = 21


def measure_cold(database_url: str, instance: Path) -> dict[str, tuple[float, float]]:
    """{page label: (median ms, second-slowest ms)} with the page cache emptied each time."""
    from storefront.catalogue.cache import fragments_of, rows_of
    from storefront.extensions import db

    logging.getLogger("storefront").setLevel(logging.WARNING)
    app = local_app(database_url, instance)
    client, first_slug = shopper_client(app)
    found = {}
    try:
        for label, path in pages(first_slug):
            client.get(path)  # the process's first request of a page loads more than the rest
            times = []
            for _ in range(ROUNDS):
                fragments_of(app).clear()
                rows_of(app).clear()
                began = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - began) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} answered {response.status_code}")
            times.sort()
            found[label] = (statistics.median(times), times[-2])
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return found
