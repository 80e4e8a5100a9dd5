"""``python -m bench`` — measure the shop and print the figures as Markdown tables.

For each database (SQLite; and PostgreSQL when ``STOREFRONT_BENCH_DATABASE_URL`` names a
database whose role may create databases) the run:

1. counts the SQL statements of each page for a catalogue of 10 and of 1,000 products;
2. starts the sandbox gateway and the shop (the Procfile's gunicorn settings) on a migrated
   database seeded with 1,000 products (``--products``' first size);
3. measures requests per second and p50/p95/p99 latency at 16 connections for the home page,
   a category page, a product page, a search and a cart of three items; for placing an order
   with the gateway registering at once and after 200 ms; and for signed gateway callbacks
   about orders already paid (the duplicate notification every gateway sends);
4. measures a category page unloaded, then while 4, 8 and 16 order placements at a time
   wait 2 s each on the gateway;
5. measures the pages again on a database seeded with 100,000 products (each further size),
   to show what each page's cost does as the catalogue grows.

Before and after all that, a bare Flask app (``bench.bare``) is measured the same way, as the
yardstick for every page's throughput (the better of the two). Progress goes to stderr, the
report to stdout.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench import cold, load, machine, queries, report, servers, shopper
from bench.report import DatabaseRun, Row
from bench.seed import seed_database

QUERY_SIZES = (10, 1000)
REGISTER_DELAY = 0.2  # seconds: a gateway having an ordinary day
SLOW_GATEWAY = 2.0  # seconds: a gateway having a bad one
CALLBACK_PACE = 2  # connections: callbacks as a gateway sends them on an ordinary day
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement (8)")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of load before each measurement (1)"
    )
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (16)")
    parser.add_argument(
        "--products",
        type=_counts,
        default=[1000, 100_000],
        help="catalogue sizes served: everything is measured at the first, the pages again at "
        "each other (1000,100000)",
    )
    parser.add_argument(
        "--orders",
        type=int,
        default=300,
        help="checkouts prepared per order measurement, which ends when they run out (300)",
    )
    parser.add_argument(
        "--slow-orders",
        type=_counts,
        default=[4, 8, 16],
        help="order placements kept waiting on the 2 s gateway at once, one measurement "
        "for each number (4,8,16)",
    )
    parser.add_argument(
        "--tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk where installed, else bench.pyload (auto)",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.connections < 1 or args.orders < 1:
        parser.error("--duration ≥ 1, --warmup ≥ 0, --connections ≥ 1 and --orders ≥ 1")
    return args


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of numbers") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("numbers of 1 or more")
    return counts


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(server: servers.Server, path: str, args, at: int = 0, **request) -> load.Stats:
    """Warm up, then measure ``path`` for ``args.duration`` seconds at ``at`` connections
    (``args.connections`` unless given), spread evenly over the server's workers."""
    connections, url = at or args.connections, server.url + path
    if args.warmup:
        load.run(url, args.warmup, connections, **request)
    stats = load.run(url, args.duration, connections, spread=server.spread, **request)
    log(
        f"  {path}: {stats.rps:.0f} req/s, p99 {stats.p99:.1f} ms, {stats.errors} errors, "
        f"connections per worker {stats.spread or '?'}"
    )
    return stats


def body_size(url: str, headers: dict | None = None) -> int:
    response = requests.get(url, headers=headers or {}, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    return len(response.content)


# The yardstick ---------------------------------------------------------------------------------
def measure_bare(processes: servers.Processes, folder: Path, args) -> Row:
    command = servers.procfile_web("bench.bare:app", servers.free_port())
    bare = processes.start(
        servers.Server("bare Flask", command, dict(os.environ), folder / "bare.log", "/")
    )
    try:
        log("bare Flask")
        stats = measure(bare, "/", args)
        return Row("Bare Flask, 12-item Jinja page", "GET /", stats, body_size(bare.url + "/"))
    finally:
        processes.stop(bare)


# The shop --------------------------------------------------------------------------------------
def measure_shop(
    run: DatabaseRun,
    new_database: Callable[[str], str],
    processes: servers.Processes,
    folder: Path,
    args,
) -> None:
    folder.mkdir(parents=True)
    sandbox = processes.start(
        servers.Server(
            "sandbox",
            servers.sandbox_command(servers.free_port()),
            servers.sandbox_env(folder),
            folder / "sandbox.log",
            "/__state",
        )
    )
    try:
        for number, size in enumerate(args.products):
            url = new_database(f"shop-{size}")
            with shop_on(run, url, processes, folder, sandbox, size) as (shop, slugs):
                run.pages_at[size] = pages = []
                measure_pages(run, pages, shop, slugs, args)
                log(f"{run.database}: pages from the database, page cache emptied each time")
                run.cold_at[size] = cold.measure_cold(url, folder / f"cold-{size}")
                if number == 0:
                    run.pages = pages
                    measure_orders(run, shop.url, sandbox.url, slugs, args)
                    measure_callback(run, shop, sandbox.url, slugs[0], args)
                    measure_slow_gateway(run, shop, sandbox.url, slugs, args)
    finally:
        processes.stop(sandbox)


@contextmanager
def shop_on(run: DatabaseRun, database_url: str, processes, folder: Path, sandbox, size: int):
    """The shop on a migrated database seeded with ``size`` products: (server, first slugs)."""
    port = servers.free_port()
    shop_url = f"http://127.0.0.1:{port}"
    instance = folder / f"instance-{size}"
    env = servers.shop_env(database_url, instance, shop_url, sandbox.url)
    log(f"{run.database}: migrating and seeding {size:,} products")
    servers.migrate(env, folder / f"migrate-{size}.log")
    slugs = seed_database(database_url, instance, size)
    shop = processes.start(
        servers.Server(
            "shop", servers.procfile_web("app:app", port), env, folder / f"shop-{size}.log", "/"
        )
    )
    try:
        yield shop, slugs
    finally:
        processes.stop(shop)


def measure_pages(run: DatabaseRun, rows: list[Row], shop: servers.Server, slugs, args) -> None:
    cookie = shopper.cart_cookie(shop.url, slugs[: queries.CART_LINES])
    for label, path in queries.pages(slugs[0]):
        log(f"{run.database}: {label}")
        headers = {"Cookie": cookie} if path.startswith("/cart/") else {}
        size = body_size(shop.url + path, headers)
        rows.append(Row(label, f"GET {path}", measure(shop, path, args, headers=headers), size))


def measure_orders(run: DatabaseRun, shop: str, sandbox: str, slugs: list[str], args) -> None:
    for label, delay in (
        ("Place order, gateway registers at once", 0.0),
        (f"Place order, gateway registers after {REGISTER_DELAY * 1000:.0f} ms", REGISTER_DELAY),
    ):
        log(f"{run.database}: preparing {args.orders} checkouts")
        checkouts = shopper.prepare_many(shop, slugs, args.orders)
        log(f"{run.database}: {label}")
        if delay:
            shopper.delay_register(sandbox, delay)
        try:
            placing = shopper.OrderLoad(shop, sandbox, checkouts, args.connections)
            stats = placing.start(args.duration).wait()
        finally:
            shopper.clear_faults(sandbox)
        log(f"  {stats.requests} orders: {stats.rps:.0f}/s, p99 {stats.p99:.1f} ms")
        run.orders.append(Row(label, "POST /checkout/place", stats))


def measure_callback(run: DatabaseRun, shop: servers.Server, sandbox: str, slug: str, args):
    """The gateway's "deposited" callback, validly signed, about orders already paid.

    The callbacks name as many paid orders as there are connections, in turn (a busy shop gets
    callbacks for different orders). Measured at full load, and at the pace of a gateway that
    notifies two payments at a time.
    """
    log(f"{run.database}: paying {args.connections} orders")
    paid = shopper.paid_orders(shop.url, sandbox, slug, args.connections)
    bodies = [shopper.signed_callback(*order) for order in paid]
    path = "/pay/rbs/callback/notification"
    for body in bodies:
        first = requests.post(shop.url + path, data=body, headers=FORM, timeout=30)
        if first.status_code != 200:
            raise RuntimeError(f"a signed callback was refused: {first.status_code} {first.text}")
    for connections in sorted({args.connections, CALLBACK_PACE}, reverse=True):
        log(f"{run.database}: gateway callbacks, {connections} connections")
        stats = measure(
            shop, path, args, at=connections, method="POST", bodies=bodies, headers=FORM
        )
        label = f"Callback, {len(bodies)} paid orders in turn, {connections} connections"
        run.callbacks.append(Row(label, f"POST {path}", stats))


def measure_slow_gateway(run: DatabaseRun, shop: servers.Server, sandbox: str, slugs, args):
    category = "/c/coffee"
    log(f"{run.database}: category page, unloaded")
    run.slow_baseline = Row("unloaded", "GET /c/coffee", measure(shop, category, args))
    for waiting in args.slow_orders:
        # Each placement takes at least SLOW_GATEWAY seconds: enough checkouts for the whole time.
        per_thread = math.ceil((args.warmup + args.duration) / SLOW_GATEWAY) + 2
        log(f"{run.database}: preparing {waiting * per_thread} checkouts")
        checkouts = shopper.prepare_many(shop.url, slugs, waiting * per_thread)
        shopper.delay_register(sandbox, SLOW_GATEWAY)
        placing = shopper.OrderLoad(shop.url, sandbox, checkouts, waiting)
        try:
            placing.start(args.warmup + args.duration + 60)
            log(f"{run.database}: category page, {waiting} placements waiting on the gateway")
            loaded = measure(shop, category, args)
        finally:
            placed = placing.stop()
            shopper.clear_faults(sandbox)
        label = f"{waiting} placements waiting {SLOW_GATEWAY:.0f} s on the gateway"
        run.slow.append((waiting, Row(label, "GET /c/coffee", loaded), placed))


# The run ---------------------------------------------------------------------------------------
def databases(stack: ExitStack, folder: Path) -> list[tuple[str, Callable[[str], str]]]:
    """(label, new_database(name) → URL) for each database the run covers."""
    found: list[tuple[str, Callable[[str], str]]] = [
        ("SQLite", lambda name: f"sqlite:///{folder / name}.db")
    ]
    admin = os.environ.get("STOREFRONT_BENCH_DATABASE_URL")
    if admin:
        found.append(
            ("PostgreSQL", lambda _name: stack.enter_context(servers.postgres_database(admin)))
        )
    return found


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.monotonic()
    started = datetime.now(UTC)
    admin = os.environ.get("STOREFRONT_BENCH_DATABASE_URL")
    load.use(args.tool)
    runs: list[DatabaseRun] = []
    with ExitStack() as stack:
        watch = stack.enter_context(machine.Watch())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sf-bench-")))
        processes = stack.enter_context(servers.Processes())
        bare = measure_bare(processes, folder, args)
        for label, new_database in databases(stack, folder):
            run = DatabaseRun(label)
            for size in QUERY_SIZES:
                log(f"{label}: counting queries, {size:,} products")
                url = new_database(f"queries-{size}")
                run.queries[size] = queries.count_queries(url, folder / f"q-{label}-{size}", size)
            measure_shop(run, new_database, processes, folder / label.lower(), args)
            runs.append(run)
        # The yardstick again, and the better of the two kept: a run of it that the kernel gave
        # one worker alone, or that the machine slowed, would flatter every page against it.
        again = measure_bare(processes, folder, args)
        bare = max(bare, again, key=lambda row: row.stats.rps)
    postgres = servers.plain_postgres_url(admin) if admin else None
    described = machine.describe(load.tool_name(), postgres, watch)
    print_report(args, started, time.monotonic() - began, described, bare, runs)


def print_report(args, started, seconds, described, bare: Row, runs: list[DatabaseRun]) -> None:
    shop_command = servers.procfile_web("app:app", 0)
    settings = [
        ("Shop and bare Flask", f"gunicorn {servers.gunicorn_settings(shop_command)} (Procfile)"),
        ("Sandbox gateway", f"gunicorn {servers.gunicorn_settings(servers.sandbox_command(0))}"),
        (
            "Load",
            f"{args.connections} connections, keep-alive; {args.duration:g} s per measurement "
            f"after {args.warmup:g} s of warm-up",
        ),
        ("Rate limiter", "off (STOREFRONT_RATELIMIT_ENABLED=off: all load is from 127.0.0.1)"),
    ]
    lines = [
        "# Storefront benchmarks",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC: `{' '.join(['python -m bench', *sys.argv[1:]])}`, "
        f"{seconds / 60:.1f} minutes.",
        "",
        *report.machine_table(described, settings),
    ]
    for run in runs:
        lines += [
            "",
            f"## {run.database}: pages, orders and callbacks ({args.products[0]:,} products)",
            "",
            f"Orders: one `POST /checkout/place` per prepared checkout (cart, details and review "
            f"done beforehand, not timed), {args.connections} at a time, until {args.orders} "
            f"checkouts or {args.duration:g} s run out. Callbacks are validly signed, about "
            f"{args.connections} orders already paid, in turn (the duplicate notification "
            "gateways send): the shop keeps each as evidence and acknowledges it from what it "
            "holds, without asking the gateway again; at "
            f"{args.connections} connections, then at {CALLBACK_PACE}. The catalogue pages "
            "are measured as customers meet them: the same page over and over, so mostly "
            "from the shop's page cache after the first request of each worker.",
            "",
            *report.pages_table(bare, run),
            "",
            f"### {run.database}: pages as the catalogue grows",
            "",
            "Each page's cost is the time a request takes of the server (1 / req/s at "
            f"{args.connections} connections), against its cost at {args.products[0]:,} "
            "products.",
            "",
            *report.scale_table(run),
            "",
            "The same pages rendered from the database, the page cache emptied before each "
            f"request (in process, {cold.ROUNDS} requests each: median and slowest but one, ms): "
            "what the first view after a change of the catalogue costs.",
            "",
            *report.cold_table(run),
            "",
            f"### {run.database}: SQL statements per page",
            "",
            *report.queries_table(run),
            "",
            f"### {run.database}: catalogue while the gateway is slow",
            "",
            f"The category page at {args.connections} connections, alone and then while order "
            f"placements wait {SLOW_GATEWAY:.0f} s each on the gateway's registration (a new "
            "one starting as soon as one ends). The shop has "
            f"{servers.gunicorn_threads(servers.procfile_web('app:app', 0))} threads in all.",
            "",
            *report.slow_table(run),
            "",
            f"### {run.database}: targets",
            "",
            *report.targets_table(bare, run),
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: every server was stopped", file=sys.stderr)
        sys.exit(130)
