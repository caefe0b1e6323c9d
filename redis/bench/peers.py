"""make bench-redis's peers: the seed job through RQ and Celery on the same
redis-server (Debian python3-rq, python3-celery; run with /usr/bin/python3).

    peers.py rq|celery URL JOBS WORKERS

Each pushes JOBS seed jobs (SHA-256 of the job number's decimal text, as
`wpool-redis push --seed`), serves them with WORKERS worker processes, checks
every result against the serial computation and prints one line:

    rq: 10000 jobs, 4 workers, 12.345 s, 810 jobs/s, results ok

The time runs from the first push to the last result (RQ: workers started
after the pushes, --burst, until they exit; Celery: a worker already up
and answering ping, until the last result is in).
"""
import hashlib
import os
import subprocess
import sys
import time

from redis import Redis


def seed(n):
    return hashlib.sha256(str(n).encode()).hexdigest()


def run_rq(url, jobs, workers):
    from rq import Queue

    conn = Redis.from_url(url)
    q = Queue("seed", connection=conn)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    t0 = time.monotonic()
    ids = []
    for lo in range(1, jobs + 1, 1000):
        batch = [Queue.prepare_data("peers.seed", (n,), result_ttl=3600)
                 for n in range(lo, min(lo + 1000, jobs + 1))]
        ids += [j.id for j in q.enqueue_many(batch)]
    procs = [subprocess.Popen(["/usr/bin/rq", "worker", "--burst", "--url", url, "-q", "seed"],
                              env=env, stdout=subprocess.DEVNULL) for _ in range(workers)]
    for p in procs:
        p.wait()
    t1 = time.monotonic()
    from rq.job import Job
    bad = 0
    for lo in range(0, len(ids), 1000):
        for n, job in zip(range(lo + 1, lo + 1001), Job.fetch_many(ids[lo:lo + 1000], connection=conn)):
            if job is None or job.result != seed(n):
                bad += 1
    return t1 - t0, bad


def run_celery(url, jobs, workers):
    from celery import Celery

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=here, WPOOL_PEERS_URL=url)
    proc = subprocess.Popen(["/usr/bin/python3", "-m", "celery", "-A", "peers", "worker",
                             "-c", str(workers), "--pool", "prefork", "-Q", "seed",
                             "--without-gossip", "--without-mingle", "--without-heartbeat",
                             "-l", "warning"], env=env, cwd=here, stdout=subprocess.DEVNULL)
    try:
        for _ in range(600):  # up to 60 s for the worker to answer
            if app.control.ping(timeout=0.1):
                break
        t0 = time.monotonic()
        results = [seed_task.apply_async((n,), queue="seed") for n in range(1, jobs + 1)]
        got = [r.get(timeout=600) for r in results]
        t1 = time.monotonic()
    finally:
        proc.terminate()
        proc.wait()
    bad = sum(1 for n, g in zip(range(1, jobs + 1), got) if g != seed(n))
    return t1 - t0, bad


if "WPOOL_PEERS_URL" in os.environ or (len(sys.argv) > 1 and sys.argv[1] == "celery"):
    from celery import Celery

    _url = os.environ.get("WPOOL_PEERS_URL") or sys.argv[2]
    app = Celery("peers", broker=_url, backend=_url)
    app.conf.worker_prefetch_multiplier = 4

    @app.task(name="peers.seed_task")
    def seed_task(n):
        return seed(n)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("rq", "celery"):
        sys.exit("usage: peers.py rq|celery URL JOBS WORKERS")
    name, url, jobs, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    secs, bad = (run_rq if name == "rq" else run_celery)(url, jobs, workers)
    print("%s: %d jobs, %d workers, %.3f s, %.0f jobs/s, %s" %
          (name, jobs, workers, secs, jobs / secs, "results ok" if bad == 0 else "%d WRONG" % bad))
    sys.exit(0 if bad == 0 else 1)
