"""The reconciler's schedule: a next check time on each attempt, from separate back-off lists
for unknown and pending payments; any number of reconciler processes share the due attempts
and never ask about one twice."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from storefront import create_app
from storefront.config import ConfigError
from storefront.extensions import db
from storefront.payments.handoff import start_payment
from storefront.payments.models import AttemptState, PaymentAttempt, PaymentEvent
from storefront.payments.reconciler import claim_due, reconcile, until_next
from storefront.timeutil import as_utc, now_utc
from tests.deployment import ROOT, SECRET, Deployment, create_database, drop_database
from tests.ops_support import make_order

BACKOFF = {"RECONCILE_UNKNOWN_BACKOFF": "110,220", "RECONCILE_PENDING_BACKOFF": "330,440,550"}


def started_attempt(app, age: float = 120) -> int:
    """An RBS payment registered at the sandbox and never paid, handed off ``age`` s ago."""
    with app.test_request_context():
        attempt = start_payment(make_order(), "rbs")
        db.session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.id == attempt.id)
            .values(created_at=now_utc() - timedelta(seconds=age))
        )
        db.session.commit()
        return attempt.id


def schedule_of(attempt_id: int) -> tuple[str, float | None, int]:
    """The attempt's state, seconds until its next check, and its streak."""
    db.session.expire_all()
    attempt = db.session.get(PaymentAttempt, attempt_id)
    wait = None
    if attempt.next_check_at is not None:
        wait = (as_utc(attempt.next_check_at) - now_utc()).total_seconds()
    return attempt.state, wait, attempt.check_streak


def make_due(attempt_id: int) -> None:
    db.session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt_id)
        .values(next_check_at=now_utc() - timedelta(seconds=1), checked_at=None)
    )
    db.session.commit()


def near(wait: float | None, expected: float) -> bool:
    return wait is not None and expected - 30 <= wait <= expected


def test_pending_payments_back_off_along_their_own_list(make_shop):
    shop = make_shop(**BACKOFF)
    app = shop.app
    attempt_id = started_attempt(app)
    with app.app_context():
        assert reconcile()["checked"] == 1
        state, wait, streak = schedule_of(attempt_id)
        assert state == AttemptState.PENDING and streak == 1 and near(wait, 330)
        assert reconcile()["checked"] == 0  # not due again yet
        for expected_streak, expected_wait in ((2, 440), (3, 550), (4, 550)):
            make_due(attempt_id)
            assert reconcile()["checked"] == 1
            state, wait, streak = schedule_of(attempt_id)
            assert (state, streak) == (AttemptState.PENDING, expected_streak)
            assert near(wait, expected_wait), wait


def test_unknown_payments_back_off_along_theirs_and_a_settled_one_leaves_the_schedule(
    make_shop, sandbox
):
    shop = make_shop(**BACKOFF)
    app = shop.app
    attempt_id = started_attempt(app)
    with app.app_context():
        db.session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.id == attempt_id)
            .values(state=AttemptState.UNKNOWN)
        )
        db.session.commit()
        sandbox.arm("rbs", "getOrderStatusExtended", "http_500", count=4)  # two checks, 2 tries
        reconcile()
        assert schedule_of(attempt_id)[0] == AttemptState.UNKNOWN
        assert near(schedule_of(attempt_id)[1], 110) and schedule_of(attempt_id)[2] == 1
        make_due(attempt_id)
        reconcile()
        state, wait, streak = schedule_of(attempt_id)
        assert (state, streak) == (AttemptState.UNKNOWN, 2) and near(wait, 220)
        make_due(attempt_id)
        reconcile()  # the gateway answers again: registered, not paid → pending, list restarts
        state, wait, streak = schedule_of(attempt_id)
        assert (state, streak) == (AttemptState.PENDING, 1) and near(wait, 330)
        db.session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.id == attempt_id)
            .values(state=AttemptState.DECLINED, next_check_at=None)
        )
        db.session.commit()
        assert claim_due(60, 10) == []  # settled: never due again


def test_a_claimed_attempt_is_not_claimed_again_until_its_lease_runs_out(app):
    from tests.ops_support import make_attempt

    with app.app_context():
        attempt = make_attempt(make_order(), "pending", age=120, gateway_id="md-lease")
        assert claim_due(60, 10) == [attempt.id]
        assert claim_due(60, 10) == []  # another process, or this one again: already claimed
        db.session.expire_all()
        lease = as_utc(db.session.get(PaymentAttempt, attempt.id).next_check_at)
        assert lease > now_utc() + timedelta(seconds=250)  # RECONCILE_CLAIM_SECONDS, 300
        make_due(attempt.id)
        assert claim_due(60, 10) == [attempt.id]


def test_the_worker_loop_sleeps_until_the_next_check_at_most_n(app):
    from tests.ops_support import make_attempt

    with app.app_context():
        assert until_next(60, 45) == 45  # nothing scheduled
        order = make_order()
        order.payment_due_by = now_utc() + timedelta(days=1)
        attempt = make_attempt(order, "pending", gateway_id="md-loop")
        db.session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.id == attempt.id)
            .values(next_check_at=now_utc() + timedelta(seconds=20))
        )
        db.session.commit()
        assert 1 <= until_next(60, 45) <= 20
        make_due(attempt.id)
        assert until_next(60, 45) == 1  # due now: the next pass soon, never a busy loop
    result = app.test_cli_runner().invoke(args=["payments", "reconcile", "--help"])
    assert "--every" in result.output


@pytest.mark.parametrize("value", ["", "0", "60,-1", "soon"])
def test_a_back_off_list_must_be_waits(value, tmp_path):
    with pytest.raises(ConfigError, match="STOREFRONT_RECONCILE_PENDING_BACKOFF"):
        create_app({"RECONCILE_PENDING_BACKOFF": value, "INSTANCE_PATH": str(tmp_path)})


def test_two_reconciler_processes_on_postgresql_ask_about_each_attempt_once(
    sandbox_server, sandbox, tmp_path
):
    admin = os.environ.get("STOREFRONT_TEST_POSTGRES_URL")
    if not admin:
        pytest.fail("STOREFRONT_TEST_POSTGRES_URL is not set: run `make test`")
    url = create_database(admin)
    settings = {"RECONCILE_BATCH": 3}
    app = create_app(
        {
            "SECRET_KEY": SECRET,
            "DATABASE_URL": url,
            "SANDBOX": False,
            "INSTANCE_PATH": str(tmp_path),
            "RBS_URL": f"{sandbox_server.url}/rbs/payment/rest/",
            "GATEWAYS": "rbs",
            **settings,
        }
    )
    try:
        with app.app_context():
            db.create_all()
        ids = [started_attempt(app) for _ in range(24)]
        # Every status query is slow, so both processes are at work at the same time.
        sandbox.arm("rbs", "getOrderStatusExtended", "delay", count=100, seconds=0.25)
        env = Deployment(url, sandbox_server.url, tmp_path, GATEWAYS="rbs", **settings).env()
        command = [sys.executable, "-m", "flask", "--app", "app", "payments", "reconcile"]

        def run(_):
            return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
                command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
            )

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(run, range(2)))
        assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
        checked = [int(r.stdout.split("checked=")[1].split()[0]) for r in results]
        assert sum(checked) == len(ids)
        with app.app_context():
            summaries = db.session.execute(
                select(PaymentEvent.attempt_id, PaymentEvent.summary).where(
                    PaymentEvent.kind == "request", PaymentEvent.attempt_id.in_(ids)
                )
            ).all()
            asked = [a for a, summary in summaries if "getOrderStatusExtended" in summary]
            assert sorted(asked) == sorted(ids)  # each attempt asked exactly once
            states = db.session.execute(
                select(PaymentAttempt.state).where(PaymentAttempt.id.in_(ids))
            ).scalars()
            assert set(states) == {AttemptState.PENDING}
            db.session.remove()
            db.engine.dispose()
        print("checks per process:", checked)
    finally:
        drop_database(admin, url)


def test_a_scheduled_check_still_waits_out_the_gateways_pause_after_a_query(app, monkeypatch):
    from storefront.gateways.rbs import RbsGateway
    from tests.ops_support import make_attempt

    monkeypatch.setattr(RbsGateway, "recheck_pending_after", 600.0)
    with app.app_context():
        attempt = make_attempt(make_order(), "pending", age=900, gateway_id="md-pause")
        make_due(attempt.id)
        asked = now_utc() - timedelta(seconds=10)  # a pending page asked just now
        db.session.execute(
            update(PaymentAttempt).where(PaymentAttempt.id == attempt.id).values(checked_at=asked)
        )
        db.session.commit()
        assert claim_due(60, 10) == []
        assert near(schedule_of(attempt.id)[1], 590)
