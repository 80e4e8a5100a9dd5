"""The run's figures as Markdown tables, and each target judged against them.

Targets (what the figures are read against; nothing fails if one is missed):
- a catalogue page serves at least half as many requests per second as the bare Flask page,
  the cart at least 0.35 times as many;
- at the largest catalogue, each page costs at most 1.25 times what it costs at the smallest,
  and search's p95 is at most twice its p95 there;
- a catalogue page's p99 is at most 50 ms at 16 connections;
- every page sends at most 3 SQL statements, whatever the catalogue's size;
- a gateway callback is answered with a p99 of at most 100 ms;
- while order placements wait 2 s on the gateway, the catalogue's p95 is at most twice its
  unloaded value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.load import Stats

CATALOGUE_PAGES = ("Home", "Category", "Product", "Search")
MIN_SHARE_OF_BARE = 0.5
MIN_CART_SHARE_OF_BARE = 0.35
MAX_COST_GROWTH = 1.25
MAX_SEARCH_P95_GROWTH = 2.0
MAX_P99_PAGE_MS = 50.0
MAX_QUERIES = 3
MAX_P99_CALLBACK_MS = 100.0
MAX_SLOW_GATEWAY_RATIO = 2.0


@dataclass
class Row:
    label: str
    request: str
    stats: Stats
    size: int | None = None  # bytes of the answer's body, where it is a page


@dataclass
class DatabaseRun:
    """Everything measured on one database."""

    database: str
    pages: list[Row] = field(default_factory=list)
    orders: list[Row] = field(default_factory=list)
    callbacks: list[Row] = field(default_factory=list)
    slow_baseline: Row | None = None
    # (placements kept waiting on the gateway, the category page meanwhile, the placements)
    slow: list[tuple[int, Row, Stats]] = field(default_factory=list)
    queries: dict[int, dict[str, int]] = field(default_factory=dict)
    # The pages measured at each catalogue size (``pages`` is those at the first size).
    pages_at: dict[int, list[Row]] = field(default_factory=dict)
    # Each page's (median, slowest but one) ms when rendered from the database, per size.
    cold_at: dict[int, dict[str, tuple[float, float]]] = field(default_factory=dict)


def growth(run: DatabaseRun) -> list[tuple[str, float, float]]:
    """(page, cost at the largest size ÷ cost at the smallest, p95 likewise), per page."""
    sizes = sorted(run.pages_at)
    if len(sizes) < 2:
        return []
    small = {row.label: row.stats for row in run.pages_at[sizes[0]]}
    found = []
    for row in run.pages_at[sizes[-1]]:
        base = small.get(row.label)
        if base is not None and base.rps and row.stats.rps and base.p95:
            found.append((row.label, base.rps / row.stats.rps, row.stats.p95 / base.p95))
    return found


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _stats_cells(stats: Stats) -> list[str]:
    if not stats.requests:  # not one answer during the whole run
        return ["0", "—", "—", "—", "0", f"{stats.errors}", stats.spread or "—"]
    return [
        f"{stats.rps:.0f}",
        _ms(stats.p50),
        _ms(stats.p95),
        _ms(stats.p99),
        f"{stats.requests}",
        f"{stats.errors}",
        stats.spread or "—",
    ]


STATS_HEADER = ["req/s", "p50 ms", "p95 ms", "p99 ms", "requests", "errors", "conns/worker"]


def machine_table(rows: list[tuple[str, str]], settings: list[tuple[str, str]]) -> list[str]:
    return _table(["", ""], [[k, v] for k, v in rows + settings])


def pages_table(bare: Row, run: DatabaseRun) -> list[str]:
    rows = [
        [
            bare.label,
            f"`{bare.request}`",
            f"{(bare.size or 0) / 1024:.1f}",
            *_stats_cells(bare.stats),
            "1.00",
        ]
    ]
    for row in run.pages + run.orders + run.callbacks:
        size = f"{row.size / 1024:.1f}" if row.size is not None else "—"
        page = row in run.pages and bare.stats.rps
        share = f"{row.stats.rps / bare.stats.rps:.2f}" if page else "—"
        rows.append([row.label, f"`{row.request}`", size, *_stats_cells(row.stats), share])
    return _table(["What", "Request", "KiB", *STATS_HEADER, "× bare Flask"], rows)


def queries_table(run: DatabaseRun) -> list[str]:
    sizes = sorted(run.queries)
    labels = list(run.queries[sizes[0]]) if sizes else []
    rows = [[label, *(str(run.queries[size][label]) for size in sizes)] for label in labels]
    return _table(["Page", *(f"{size:,} products" for size in sizes)], rows)


def scale_table(run: DatabaseRun) -> list[str]:
    sizes = sorted(run.pages_at)
    by_size = [{row.label: row.stats for row in run.pages_at[size]} for size in sizes]
    grown = {label: (cost, p95) for label, cost, p95 in growth(run)}
    rows = []
    for label in by_size[0] if by_size else {}:
        cells = []
        for found in by_size:
            stats = found.get(label)
            cells.append(f"{stats.rps:.0f} req/s, p95 {_ms(stats.p95)} ms" if stats else "—")
        cost, p95 = grown.get(label, (None, None))
        rows.append(
            [
                label,
                *cells,
                f"{cost:.2f}" if cost is not None else "—",
                f"{p95:.2f}" if p95 is not None else "—",
            ]
        )
    header = ["Page", *(f"{size:,} products" for size in sizes), "cost ×", "p95 ×"]
    return _table(header, rows)


def cold_table(run: DatabaseRun) -> list[str]:
    sizes = sorted(run.cold_at)
    labels = list(run.cold_at[sizes[0]]) if sizes else []
    rows = []
    for label in labels:
        cells = [
            f"{_ms(run.cold_at[size][label][0])} / {_ms(run.cold_at[size][label][1])}"
            for size in sizes
        ]
        first, last = run.cold_at[sizes[0]][label][0], run.cold_at[sizes[-1]][label][0]
        rows.append([label, *cells, _ratio(last, first)])
    return _table(["Page", *(f"{size:,} products" for size in sizes), "median ×"], rows)


def slow_table(run: DatabaseRun) -> list[str]:
    base = run.slow_baseline
    rows = [[base.label, *_stats_cells(base.stats), "1.00", "—"]]
    for _, row, placed in run.slow:
        orders = f"{placed.requests} placed, p50 {_ms(placed.p50)} ms, {placed.errors} errors"
        ratio = _ratio(row.stats.p95, base.stats.p95) if row.stats.requests else "∞"
        rows.append([row.label, *_stats_cells(row.stats), ratio, orders])
    return _table(["Category page", *STATS_HEADER, "p95 × unloaded", "Orders meanwhile"], rows)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "—"


def targets_table(bare: Row, run: DatabaseRun) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    rows = []
    catalogue = [r for r in run.pages if r.label in CATALOGUE_PAGES]
    if catalogue and bare.stats.rps:
        worst = min(catalogue, key=lambda r: r.stats.rps)
        share = worst.stats.rps / bare.stats.rps
        rows.append(
            [
                f"Catalogue pages ≥ {MIN_SHARE_OF_BARE:.0%} of bare Flask's req/s",
                f"lowest: {worst.label} {share:.0%}",
                verdict(share >= MIN_SHARE_OF_BARE),
            ]
        )
    carts = [r for r in run.pages if r.label.startswith("Cart")]
    if carts and bare.stats.rps:
        share = carts[0].stats.rps / bare.stats.rps
        rows.append(
            [
                f"Cart ≥ {MIN_CART_SHARE_OF_BARE:.0%} of bare Flask's req/s",
                f"{share:.0%}",
                verdict(share >= MIN_CART_SHARE_OF_BARE),
            ]
        )
    grown = growth(run)
    if grown:
        sizes = sorted(run.pages_at)
        label, cost, _ = max(grown, key=lambda g: g[1])
        rows.append(
            [
                f"Each page's cost at {sizes[-1]:,} products ≤ {MAX_COST_GROWTH}× at {sizes[0]:,}",
                f"highest: {label} × {cost:.2f}",
                verdict(cost <= MAX_COST_GROWTH),
            ]
        )
        for label, _, p95 in grown:
            if label == "Search":
                rows.append(
                    [
                        f"Search p95 at {sizes[-1]:,} products ≤ {MAX_SEARCH_P95_GROWTH:.0f}× "
                        f"at {sizes[0]:,}",
                        f"× {p95:.2f}",
                        verdict(p95 <= MAX_SEARCH_P95_GROWTH),
                    ]
                )
    if catalogue:
        worst = max(catalogue, key=lambda r: r.stats.p99)
        rows.append(
            [
                f"Catalogue p99 ≤ {MAX_P99_PAGE_MS:.0f} ms at 16 connections",
                f"highest: {worst.label} {_ms(worst.stats.p99)} ms",
                verdict(worst.stats.p99 <= MAX_P99_PAGE_MS),
            ]
        )
    if run.queries:
        most = max(max(counts.values()) for counts in run.queries.values())
        same = len({tuple(counts.values()) for counts in run.queries.values()}) == 1
        rows.append(
            [
                f"≤ {MAX_QUERIES} queries per page, whatever the catalogue's size",
                f"at most {most}; {'same' if same else 'different'} for every size",
                verdict(most <= MAX_QUERIES and same),
            ]
        )
    for row in run.callbacks:
        rows.append(
            [
                f"Callback p99 ≤ {MAX_P99_CALLBACK_MS:.0f} ms ({row.label.lower()})",
                f"{_ms(row.stats.p99)} ms",
                verdict(row.stats.p99 <= MAX_P99_CALLBACK_MS),
            ]
        )
    for waiting, row, _ in run.slow:
        base, loaded = run.slow_baseline.stats.p95, row.stats.p95
        answered = row.stats.requests > 0
        rows.append(
            [
                f"Slow gateway (2 s), {waiting} placements waiting: catalogue p95 ≤ "
                f"{MAX_SLOW_GATEWAY_RATIO:.0f}× unloaded",
                f"{_ms(loaded)} ms vs {_ms(base)} ms (× {_ratio(loaded, base)})"
                if answered
                else "no answer during the whole run",
                verdict(answered and base > 0 and loaded <= MAX_SLOW_GATEWAY_RATIO * base),
            ]
        )
    return _table(["Target", "Measured", "Verdict"], rows)
