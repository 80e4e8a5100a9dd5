"""gunicorn's settings beyond the Procfile's command line: Prometheus's multiprocess mode, and
the garbage collector's view of a worker's start-up objects.

Every worker keeps its metrics in files under ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``
sums them. Set it to share the directory with the reconciler's worker on the same host; unset,
each gunicorn master makes a directory of its own and removes it when it exits. At start the
files of processes no longer running are removed; when a worker exits its live gauges go.
"""

import os
import re
import shutil
import tempfile

_PID = re.compile(r"_(\d+)\.db$")
_OWN_DIRECTORY = "STOREFRONT_METRICS_DIR_MADE_BY_GUNICORN"

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Read before any worker imports the shop: the workers inherit it.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="storefront-metrics-")
    os.environ[_OWN_DIRECTORY] = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        found = _PID.search(name)
        if found and not _running(int(found.group(1))):
            os.remove(os.path.join(directory, name))


def post_worker_init(worker):
    # Everything the worker loaded to serve (modules, the ORM's mappings, templates, locale
    # data) lives as long as the worker. Left to the collector, each full collection walked
    # all of it again, stopping every thread of the worker for 50-140 ms now and then: the
    # slowest of its requests waited for that. Frozen, a full collection walks only what came
    # after (8-30 ms).
    import gc

    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    made = os.environ.get(_OWN_DIRECTORY)
    if made and made == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(made, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
