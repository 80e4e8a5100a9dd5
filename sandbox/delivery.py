"""Server-to-server deliveries (callbacks, notifications) from the sandbox to the shop.

Each delivery is a job stored in the sandbox's state, so tests can see what was sent, how often
and what the shop answered (``GET /__state``). Delivery runs on a background thread, with the
retry policy the protocol's gateway uses. A per-gateway setting ``delivery:<gateway>`` chooses
``deliver`` (default), ``hold`` (kept until ``POST /__control/deliver``) or ``drop`` (never sent).
"""

from __future__ import annotations

import secrets
import threading
import time

import requests

TIMEOUT = (3.05, 10)


def enqueue(app, gateway: str, job: dict, copies: int = 1) -> dict:
    """Store a delivery job and send it now (``copies`` at once) unless held or dropped."""
    store = app.extensions["sandbox_store"]
    job = {
        "id": secrets.token_hex(8),
        "gateway": gateway,
        "method": "POST",
        "tries": [],
        "delivered": False,
        "max_tries": 3,
        "retry_delay": 0.5,
        "delay": 0.0,
        "timeout": list(TIMEOUT),
        **job,
    }
    mode = store.setting("delivery:" + gateway, "deliver")
    job["state"] = {"deliver": "queued", "hold": "held", "drop": "dropped"}[mode]
    store.put("delivery", job["id"], job)
    if mode == "deliver":
        for _ in range(copies):
            start(app, job["id"])
    return job


def start(app, job_id: str) -> None:
    thread = threading.Thread(target=_run, args=(app, job_id), daemon=True)
    thread.start()


def _run(app, job_id: str) -> None:
    store = app.extensions["sandbox_store"]
    job = store.get("delivery", job_id)
    if job is None:
        return
    time.sleep(min(float(job.get("delay", 0)), 60))
    for n in range(int(job["max_tries"])):
        try:
            response = requests.request(
                job["method"],
                job["url"],
                data=job.get("data") if job["method"] == "POST" else None,
                params=job.get("data") if job["method"] == "GET" else None,
                headers=job.get("headers") or {},
                timeout=tuple(job["timeout"]),
                allow_redirects=False,
            )
            outcome = {"status": response.status_code, "body": response.text[:2000]}
        except requests.RequestException as exc:
            outcome = {"status": None, "error": type(exc).__name__}

        def note(doc, outcome=outcome):
            doc["tries"].append(outcome)
            if outcome["status"] == 200:
                doc["delivered"] = True
                doc["state"] = "delivered"

        store.update("delivery", job_id, note)
        if outcome["status"] == 200:
            return
        if n + 1 < int(job["max_tries"]):
            time.sleep(float(job["retry_delay"]))
    store.update("delivery", job_id, lambda doc: doc.update(state="failed"))
