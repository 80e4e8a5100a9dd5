"""The back office's front page: what was taken today and in the last 7 days, and what waits
for someone (open payments, held orders, orders on hold, payments unknown for too long).

Days are UTC days: the shop has no timezone setting, and its stored times are all UTC. Every
figure is one aggregate query, however many orders there are.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import current_app, render_template

from storefront.admin import queries
from storefront.admin.views import bp
from storefront.timeutil import now_utc

WEEK = 7  # days, today included


@bp.get("/")
def index():
    """Today's and the last 7 days' takings, and the counts that need someone's attention."""
    now = now_utc()
    today = now.date()
    midnight = datetime.combine(today, time.min, tzinfo=UTC)
    week_start = midnight - timedelta(days=WEEK - 1)
    tomorrow = midnight + timedelta(days=1)
    unknown_after = timedelta(seconds=float(current_app.config["ALERT_UNKNOWN_AFTER"]))
    return render_template(
        "admin/dashboard.html",
        today=today,
        week_from=week_start.date(),
        today_takings=queries.takings(midnight, tomorrow),
        week_takings=queries.takings(week_start, tomorrow),
        counts=queries.attention_counts(now - unknown_after),
        unknown_minutes=round(unknown_after.total_seconds() / 60),
    )
