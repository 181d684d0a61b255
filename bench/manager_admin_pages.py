#!/usr/bin/python3
"""The manager's admin API at fleet size: 100-row pages of GET /api/v1/agents over N agents
(default 100,000), SQLite and PostgreSQL side by side in one run.

For each store backend: camtunnel-manager creates its schema and stops; the agents are written
straight into its database in one statement (ids ag-000000..., one in 20 deactivated, ten
operators, three Streamers, half of them heard from in the last minute), the tables analysed;
the manager starts again on it. Then, for each filter the API takes (none, state, operator,
Streamer, online, offline, and combinations), the first page and pages at random cursors are
read, each with its `total` (counted afresh on a first page; later pages reuse a count up to
10 s old). Measured: the latency of each request as the client sees it, p50 / p99 / max per
filter and over all, the slowest first page, and whether each page came back full and in
order.

  bench/manager_admin_pages.py [--build build/release] [--agents 100000] [--pages 20]
      [--rounds 3] [--backends sqlite,postgresql] [--json bench/results/manager_admin_pages.json]
"""

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
from support import Processes, free_port, make_dev_cert  # noqa: E402

from benchlib import head_commit, print_table, stop_pg_fixture, write_result  # noqa: E402

STREAMERS = ["https://gw-%d.example:443" % i for i in range(3)]

FILTERS = [
    ("none", {}),
    ("state=active", {"state": "active"}),
    ("state=deactivated", {"state": "deactivated"}),
    ("operator", {"operator": "op-3"}),
    ("streamer", {"streamer": STREAMERS[1]}),
    ("online=1", {"online": "1"}),
    ("online=0", {"online": "0"}),
    ("operator+state+online", {"operator": "op-4", "state": "active", "online": "1"}),
    ("streamer+operator", {"streamer": STREAMERS[2], "operator": "op-7"}),
]


def seed_sql(backend, n, now_ms):
    """One INSERT of n agents and one of their assignments, in the backend's dialect."""
    if backend == "sqlite":
        rows = ("WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < %d) "
                % (n - 1))
        agent_id = "printf('ag-%06d', i)"
        secret = "randomblob(32)"
        streamer = "CASE i % 3 WHEN 0 THEN '{0}' WHEN 1 THEN '{1}' ELSE '{2}' END"
        source = "FROM s"
    else:
        rows = ""
        agent_id = "'ag-' || lpad(i::text, 6, '0')"
        secret = "decode(md5(i::text) || md5((i + 1)::text), 'hex')"
        streamer = "(ARRAY['{0}', '{1}', '{2}'])[i % 3 + 1]"
        source = "FROM generate_series(0, %d) AS s(i)" % (n - 1)
    streamer = streamer.format(*STREAMERS)
    # Half heard from within the last minute (online), half an hour or more ago.
    seen = "CASE WHEN i % 2 = 0 THEN {0} - (i % 60) * 1000 ELSE {0} - 3600000 - i END".format(
        now_ms)
    agents = (rows + "INSERT INTO agents (agent_id, secret, state, operator_id, activated_at_ms, "
              "last_seen_ms, last_status, located_streamer) SELECT %s, %s, CASE WHEN i %% 20 = 0 "
              "THEN 'deactivated' ELSE 'active' END, 'op-' || (i %% 10), %d, %s, "
              "'state=connected', %s %s" % (agent_id, secret, now_ms - 86400000, seen, streamer,
                                            source))
    assignments = (rows + "INSERT INTO assignments (agent_id, streamer_url, at_ms) SELECT %s, %s, "
                   "%d %s" % (agent_id, streamer, now_ms, source))
    return [agents, assignments]


def seed(backend, store, n):
    now_ms = int(time.time() * 1000)
    statements = seed_sql(backend, n, now_ms)
    if backend == "sqlite":
        db = sqlite3.connect(store)
        for sql in statements:
            db.execute(sql)
        db.commit()
        db.execute("ANALYZE")
        db.close()
    else:
        for sql in statements + ["ANALYZE"]:
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", store, "-c", sql], check=True,
                           stdout=subprocess.DEVNULL)


def get(admin, params):
    url = "http://127.0.0.1:%d/api/v1/agents?%s" % (admin, urllib.parse.urlencode(params))
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    return (time.perf_counter() - t0) * 1000, body


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def run_backend(args, backend, tmp):
    b = lambda name: os.path.join(args.build, name)
    procs = Processes(os.path.join(tmp, "logs"))
    pg = None
    try:
        cert = make_dev_cert(tmp)
        store = os.path.join(tmp, "manager.db")
        if backend == "postgresql":
            pg = procs.start("postgres", [b("tests/camtunnel_test_pg_cluster_fixture"), "run"],
                             stdin=subprocess.PIPE)
            store = pg.wait_line(r"^pg: conninfo=(.*)$", 120).group(1)
        master = os.path.join(tmp, "factory_master")
        with open(master, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        port = free_port()
        argv = [b("manager/camtunnel-manager"), "--listen=127.0.0.1:%d" % port,
                "--admin_listen=127.0.0.1:0", "--cert=%s" % cert[0], "--key=%s" % cert[1],
                "--store=%s" % store, "--factory_master_file=%s" % master,
                "--operators=acme", "--manager_url=https://127.0.0.1:%d" % port]

        def start_manager():
            p = procs.start("manager", argv)
            return p, int(p.wait_line(r"^camtunnel-manager: ready port=\d+ admin=(\d+)", 30)
                          .group(1))

        mgr, _ = start_manager()  # creates the schema
        mgr.stop()
        t0 = time.monotonic()
        seed(backend, store, args.agents)
        seed_s = time.monotonic() - t0
        mgr, admin = start_manager()
        rng = random.Random(1)
        ids = ["ag-%06d" % i for i in range(args.agents)]
        per_filter, rows, bad = {}, [], 0
        firsts_all = []
        for name, params in FILTERS:
            times, firsts = [], []
            for _ in range(args.rounds):
                cursors = [None] + sorted(rng.sample(ids, args.pages))
                for cursor in cursors:
                    q = dict(params, limit=100)
                    if cursor:
                        q["cursor"] = cursor
                    ms, body = get(admin, q)
                    times.append(ms)
                    if not cursor:
                        firsts.append(ms)  # counted afresh (later pages reuse the count)
                    page = [a["id"] for a in body["agents"]]
                    # In order, past the cursor, and full unless it is the last page.
                    if (page != sorted(page) or (cursor and page and page[0] <= cursor)
                            or (body["next_cursor"] and len(page) != 100)):
                        bad += 1
            per_filter[name] = times
            firsts_all += firsts
            rows.append({"backend": backend, "filter": name, "requests": len(times),
                         "p50_ms": round(percentile(times, 50), 2),
                         "p99_ms": round(percentile(times, 99), 2),
                         "max_ms": round(max(times), 2),
                         "first_page_max_ms": round(max(firsts), 2)})
        everything = [t for ts in per_filter.values() for t in ts]
        rows.append({"backend": backend, "filter": "all", "requests": len(everything),
                     "p50_ms": round(percentile(everything, 50), 2),
                     "p99_ms": round(percentile(everything, 99), 2),
                     "max_ms": round(max(everything), 2),
                     "first_page_max_ms": round(max(firsts_all), 2)})
        for row in rows:
            row.update(agents=args.agents, seed_s=round(seed_s, 1), bad_pages=bad)
        return rows
    finally:
        procs.stop_all()
        stop_pg_fixture(pg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--agents", type=int, default=100000)
    ap.add_argument("--pages", type=int, default=20, help="random cursors per filter and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--json", default="bench/results/manager_admin_pages.json")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    rows = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="manager-admin-") as tmp:
            rows.extend(run_backend(args, backend, tmp))
    keys = ["backend", "filter", "requests", "p50_ms", "p99_ms", "max_ms", "first_page_max_ms",
            "bad_pages"]
    print_table(keys, [[row[k] for k in keys] for row in rows])
    commit = head_commit()
    write_result(args.json, "manager_admin_pages", rows, commit=commit,
                 command=" ".join(["bench/manager_admin_pages.py"] + sys.argv[1:]))


if __name__ == "__main__":
    main()
