#!/usr/bin/python3
"""The gateway's /metrics under known traffic: exact values, promtool lint, a real Prometheus.

One gateway (TLS agent listener), one C++ agent exposing a loopback echo service, then:
3 CONNECT tunnels moving PAYLOAD bytes each way, 2 CONNECTs for agents nobody runs, 1 CONNECT
for a port the agent does not expose. The scrape taken after that traffic must show exactly those
counts. A Prometheus server (Debian's `prometheus`, run directly) scrapes the same gateway every
second with deploy/prometheus/camtunnel-alerts.yml loaded; its query API must read the values
back, every alert rule must evaluate without error, and every query of the Grafana dashboard
must be valid PromQL. The same for a camtunnel-manager and its dashboard.
"""

import json
import os
import re
import tempfile
import time
import unittest

import opslib
from opslib import Processes, make_dev_cert, wait_until

PAYLOAD = 200_000
OK_TUNNELS = 3
AGENT = "cam-1"


class GatewayMetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ops-metrics-")
        cls.procs = Processes(os.path.join(cls.tmp.name, "logs"))
        cls.echo = opslib.EchoServer()
        try:
            cls._start()
        except BaseException:
            cls._stop()
            raise

    @classmethod
    def _start(cls):
        d = cls.tmp.name
        gw_bin = opslib.binary("camtunnel-gateway")
        cert, key = make_dev_cert(d)
        keys = opslib.write_streamer_keys(gw_bin, d)
        key_ref, key_file = opslib.derive_agent_key(gw_bin, keys, AGENT, d)
        # With an admin token, as a node whose admin port is reachable beyond loopback runs.
        token, token_file = opslib.write_admin_token(d)
        cls.gw_started = time.time()
        cls.gw = opslib.start_gateway(cls.procs, gw_bin, cert, key, keys, token=token,
                                      token_file=token_file)
        # Prometheus first: its first scrape comes ~5 s after start (target discovery is
        # throttled), so it warms up while the traffic below runs.
        cls.prom = opslib.PrometheusServer(
            cls.procs, d, ["127.0.0.1:%d" % cls.gw.admin_port],
            rule_files=[os.path.join(opslib.DEPLOY_DIR, "prometheus", "camtunnel-alerts.yml")],
            bearer_file=token_file)
        cls.agent = opslib.start_agent(cls.procs, opslib.binary("camtunnel-agent"), cls.gw, AGENT,
                                       key_ref, key_file, cert,
                                       ["echo=127.0.0.1:%d" % cls.echo.port])
        wait_until(lambda: AGENT in opslib.agent_ids(cls.gw), 10, 0.05, "agent connected")

        payload = os.urandom(PAYLOAD)
        cls.statuses = []
        for _ in range(OK_TUNNELS):
            status, got = opslib.connect_tunnel(cls.gw.frontend_port,
                                                "%s:%d" % (AGENT, cls.echo.port), payload)
            if got != payload:
                raise AssertionError("echo through the tunnel: %s, %d of %d bytes back"
                                     % (status, len(got), PAYLOAD))
            cls.statuses.append(status)
        for target in ("nobody-1:554", "nobody-2:%d" % cls.echo.port):
            cls.statuses.append(opslib.connect_tunnel(cls.gw.frontend_port, target)[0])
        cls.statuses.append(opslib.connect_tunnel(cls.gw.frontend_port, AGENT + ":1")[0])
        # The relays finish asynchronously after the client closes.
        wait_until(lambda: cls.gw.scrape().get("camtunnel_tunnels_open") == 0,
                   10, 0.05, "tunnels_open back to 0")
        cls.m = cls.gw.scrape()

    @classmethod
    def _stop(cls):
        status = cls.procs.stop_all()
        cls.echo.close()
        cls.tmp.cleanup()
        return status

    @classmethod
    def tearDownClass(cls):
        # Agent first (newest first), then Prometheus, then the gateway: SIGTERM must exit 0.
        status = cls._stop()
        gw = [v for k, v in status.items() if k.startswith("gateway.")]
        if gw != [0]:
            raise AssertionError("gateway exit status after SIGTERM: %s" % status)

    # ---- the traffic itself ------------------------------------------------------------------

    def test_frontend_answers(self):
        self.assertEqual([s.split(" ", 2)[1] for s in self.statuses],
                         ["200"] * OK_TUNNELS + ["404", "404", "403"], self.statuses)

    def test_admin_token_required_except_for_health(self):
        self.assertEqual(opslib.http("GET", self.gw.url("/metrics"))[0], 401)
        self.assertEqual(opslib.http("GET", self.gw.url("/metrics"), token="wrong" * 5)[0], 401)
        self.assertEqual(opslib.http("GET", self.gw.url("/api/v1/agents"))[0], 401)
        self.assertEqual(opslib.http("GET", self.gw.url("/healthz")), (200, b"ok\n"))
        self.assertEqual(opslib.http("GET", self.gw.url("/readyz"))[0], 200)

    # ---- exact values ------------------------------------------------------------------------

    def test_tunnels_opened_by_result(self):
        got = {r: self.m.get("camtunnel_tunnels_opened_total", result=r)
               for r in ("ok", "camera_refused", "timeout", "not_exposed", "unknown_agent",
                         "offline", "busy")}
        self.assertEqual(got, {"ok": 3, "camera_refused": 0, "timeout": 0, "not_exposed": 1,
                               "unknown_agent": 2, "offline": 0, "busy": 0})

    def test_frontend_requests_by_protocol_and_status(self):
        nonzero = {(dict(labels)["protocol"], dict(labels)["status"]): v
                   for (name, labels), v in self.m.samples.items()
                   if name == "camtunnel_frontend_requests_total" and v != 0}
        self.assertEqual(nonzero, {("connect", "101"): 3, ("connect", "404"): 2,
                                   ("connect", "403"): 1})

    def test_tunnel_open_histogram(self):
        m = self.m
        self.assertEqual(m.get("camtunnel_tunnel_open_seconds_count"), OK_TUNNELS)
        buckets = sorted(((float(le), v) for le, v in
                          m.series("camtunnel_tunnel_open_seconds_bucket").items()))
        self.assertEqual(buckets[-1], (float("inf"), OK_TUNNELS))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), "buckets must be cumulative")
        total = m.get("camtunnel_tunnel_open_seconds_sum")
        self.assertGreater(total, 0)
        self.assertLess(total, OK_TUNNELS * 5.0)  # below the open timeout each

    def test_relay_bytes(self):
        for direction in ("to_camera", "to_client"):
            v = self.m.get("camtunnel_relay_bytes_total", direction=direction)
            self.assertGreaterEqual(v, OK_TUNNELS * PAYLOAD, direction)
            self.assertLessEqual(v, OK_TUNNELS * (PAYLOAD + 4096), direction)

    def test_agent_gauges_and_connections(self):
        m = self.m
        self.assertEqual(m.get("camtunnel_agents_connected"), 1)
        self.assertEqual(m.get("camtunnel_agent_connections_unauthenticated"), 0)
        self.assertEqual(m.get("camtunnel_tunnels_open"), 0)
        self.assertEqual(m.get("camtunnel_agent_connections_total", kind="control",
                               result="accepted"), 1)
        # A data connection per tunnel, except that a tunnel opened on a spare (PROTOCOL.md 8.1)
        # used one proven earlier; each spare held was a data connection too.
        spares = {e: m.get("camtunnel_spare_connections_total", event=e)
                  for e in ("requested", "held", "used", "opened")}
        self.assertTrue(spares["requested"] >= spares["held"] >= spares["used"]
                        >= spares["opened"] >= 1, spares)
        self.assertEqual(m.get("camtunnel_agent_connections_total", kind="data",
                               result="accepted"),
                         OK_TUNNELS - spares["opened"] + spares["held"])
        refused = {dict(labels)["kind"] + "/" + dict(labels)["result"]: v
                   for (name, labels), v in m.samples.items()
                   if name == "camtunnel_agent_connections_total"
                   and dict(labels)["result"] != "accepted" and v != 0}
        self.assertEqual(refused, {})
        self.assertEqual(m.get("camtunnel_handshake_seconds_count"), 1)
        self.assertEqual(m.series("camtunnel_handshake_seconds_bucket")["+Inf"], 1)

    def test_no_error_counters(self):
        for name in ("camtunnel_control_frames_rejected_total", "camtunnel_frontend_bad_input_total",
                     "camtunnel_frontend_refused_total", "camtunnel_log_lines_suppressed_total",
                     "camtunnel_sessions_replaced_total", "camtunnel_heartbeat_timeouts_total",
                     "camtunnel_accept_paused_total", "camtunnel_unsupported_frames_total",
                     "camtunnel_admin_unauthorized_total"):
            values = {labels: v for (n, labels), v in self.m.samples.items() if n == name}
            self.assertTrue(values, name)
            self.assertEqual(set(values.values()), {0}, name)

    def test_process_facts(self):
        m = self.m
        rss = m.get("camtunnel_process_resident_memory_bytes")
        self.assertGreater(rss, 1 << 20)
        self.assertLess(rss, 1 << 30)
        pid = self.gw.proc.pid
        # Descriptors: what /proc says now, give or take the scrape's own connection.
        fds = len(os.listdir("/proc/%d/fd" % pid))
        self.assertLessEqual(abs(m.get("camtunnel_process_open_fds") - fds), 3)
        with open("/proc/%d/limits" % pid) as f:
            soft = re.search(r"^Max open files\s+(\d+)", f.read(), re.M).group(1)
        self.assertEqual(m.get("camtunnel_process_max_fds"), float(soft))
        # Started when the test started it (the process's age in /proc, to a second).
        start = m.get("camtunnel_process_start_time_seconds")
        self.assertLess(abs(start - self.gw_started), 2.0)
        cpu = m.get("camtunnel_process_cpu_seconds_total")
        self.assertGreater(cpu, 0)
        self.assertLess(cpu, time.time() - start + 1)
        self.assertEqual(self.m.types["camtunnel_process_cpu_seconds_total"], "counter")

    def test_build_info(self):
        (labels,) = [dict(l) for (n, l) in self.m.samples if n == "camtunnel_build_info"]
        with open(os.path.join(opslib.SOURCE_DIR, "CMakeLists.txt")) as f:
            version = re.search(r"project\(camtunnel\s+VERSION\s+([0-9.]+)", f.read()).group(1)
        self.assertEqual(labels["version"], version)
        self.assertRegex(labels["openssl"], r"^3\.\d+\.\d+")
        self.assertEqual(self.m.get("camtunnel_build_info", **labels), 1)

    def test_buffer_pool(self):
        m = self.m
        shards = m.get("camtunnel_shards")
        self.assertGreaterEqual(shards, 1)
        self.assertEqual(m.get("camtunnel_buffers_capacity"), 1024 * shards)
        self.assertEqual(m.get("camtunnel_buffer_size_bytes"), 16384)
        self.assertGreaterEqual(m.get("camtunnel_buffers_in_use"), 0)
        self.assertLessEqual(m.get("camtunnel_buffers_in_use"), 1024 * shards)

    def test_every_family_has_help(self):
        helps = dict(re.findall(r"^# HELP (\S+) (.+)$", self.m.text, re.M))
        self.assertEqual(set(helps), set(self.m.types))
        for name, text in helps.items():
            self.assertNotEqual(text.strip(), "Process fact.", name)
            self.assertGreater(len(text), 15, name)
        self.assertEqual(self.m.get("camtunnel_draining"), 0)
        self.assertEqual(self.m.get("camtunnel_config_reloads_total", result="failed"), 0)

    def test_conventions(self):
        # Prefix, _total on counters, base units; never an agent id in a label value.
        for name, kind in self.m.types.items():
            self.assertTrue(name.startswith("camtunnel_"), name)
            if kind == "counter":
                self.assertTrue(name.endswith("_total"), name)
        for (name, labels) in self.m.samples:
            self.assertNotIn(AGENT, {v for _, v in labels}, name)

    # ---- promtool ----------------------------------------------------------------------------

    def test_promtool_check_metrics(self):
        r = opslib.run([opslib.PROMTOOL, "check", "metrics"], input=self.m.text)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    # ---- a real Prometheus server ------------------------------------------------------------

    def _wait_for(self, expr, timeout=20.0):
        self.prom.wait_ready()
        return wait_until(lambda: self.prom.query(expr), timeout, 0.2, "%s in Prometheus" % expr)

    def test_prometheus_reads_agents_connected(self):
        result = self._wait_for("camtunnel_agents_connected")
        self.assertEqual(len(result), 1, result)
        self.assertEqual(result[0]["metric"]["job"], "camtunnel-gateway")
        self.assertEqual(result[0]["metric"]["instance"], "127.0.0.1:%d" % self.gw.admin_port)
        self.assertEqual(result[0]["value"][1], "1")
        up = self.prom.query('up{job="camtunnel-gateway"}')
        self.assertEqual([r["value"][1] for r in up], ["1"])
        ok = self._wait_for('camtunnel_tunnels_opened_total{result="ok"}')
        self.assertEqual(ok[0]["value"][1], str(OK_TUNNELS))

    def test_alert_rules_evaluate_cleanly(self):
        self._wait_for("camtunnel_agents_connected")

        def evaluated():
            status, j = self.prom.api("/api/v1/rules")
            rules = [r for g in j["data"]["groups"] for r in g["rules"]]
            if rules and all(not r["lastEvaluation"].startswith("0001") for r in rules):
                return rules
            return None
        rules = wait_until(evaluated, 15, 0.2, "every alert rule evaluated")
        self.assertGreaterEqual(len(rules), 8)
        for r in rules:
            self.assertEqual((r["name"], r["health"], r.get("lastError", "")),
                             (r["name"], "ok", ""))
        firing = {r["name"] for r in rules if r["state"] != "inactive"}
        self.assertEqual(firing, set(), "a healthy gateway with one agent raises no alert")

    def test_dashboard_queries_run(self):
        self._wait_for("camtunnel_agents_connected")
        with open(os.path.join(opslib.DEPLOY_DIR, "grafana", "camtunnel-gateway.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        self.assertGreater(len(exprs), 10)
        for expr in exprs:
            q = expr.replace("$__rate_interval", "5s").replace("$instance", ".*")
            self.assertNotIn("$", re.sub(r"\{\{[^}]*\}\}", "", q), expr)
            self.prom.query(q)  # raises unless Prometheus accepts it
        # A few panels must show the traffic above.
        self.assertEqual(self.prom.query(
            'sum(camtunnel_agents_connected{instance=~".*"})')[0]["value"][1], "1")


class ManagerPrometheusTest(unittest.TestCase):
    """A real Prometheus scraping a camtunnel-manager (job camtunnel-manager, the alert rules
    loaded): a healthy manager that leads its deployment of one raises no alert, and every
    query of deploy/grafana/camtunnel-manager.json runs."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ops-metrics-mgr-")
        cls.procs = Processes(os.path.join(cls.tmp.name, "logs"))
        try:
            d = cls.tmp.name
            cert, key = make_dev_cert(d)
            keys = opslib.write_streamer_keys(opslib.binary("camtunnel-gateway"), d)
            streamers = os.path.join(d, "streamers.txt")
            with open(streamers, "w") as f:
                f.write("https://127.0.0.1:1 k1 %s\n" % keys)  # no admin URL: never probed
            cls.port = opslib.start_manager(cls.procs, d, cert, key, streamers)
            cls.prom = opslib.PrometheusServer(
                cls.procs, d, ["127.0.0.1:%d" % cls.port], job="camtunnel-manager",
                rule_files=[os.path.join(opslib.DEPLOY_DIR, "prometheus", "camtunnel-alerts.yml")])
            cls.prom.wait_ready()
            wait_until(lambda: cls.prom.query("camtunnel_manager_leader"), 20, 0.2,
                       "camtunnel_manager_leader in Prometheus")
        except BaseException:
            cls.procs.stop_all()
            cls.tmp.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.procs.stop_all()
        cls.tmp.cleanup()

    def test_one_leader_seen(self):
        (r,) = self.prom.query("sum(camtunnel_manager_leader)")
        self.assertEqual(r["value"][1], "1")
        (up,) = self.prom.query('up{job="camtunnel-manager"}')
        self.assertEqual(up["value"][1], "1")

    def test_alert_rules_evaluate_cleanly(self):
        def evaluated():
            status, j = self.prom.api("/api/v1/rules")
            rules = [r for g in j["data"]["groups"] for r in g["rules"]]
            if rules and all(not r["lastEvaluation"].startswith("0001") for r in rules):
                return rules
            return None
        rules = wait_until(evaluated, 15, 0.2, "every alert rule evaluated")
        for r in rules:
            self.assertEqual((r["name"], r["health"], r.get("lastError", "")),
                             (r["name"], "ok", ""))
        self.assertIn("CamtunnelManagerNoLeader", {r["name"] for r in rules})
        firing = {r["name"] for r in rules if r["state"] != "inactive"}
        self.assertEqual(firing, set(), "a healthy manager that leads raises no alert")

    def test_dashboard_queries_run(self):
        with open(os.path.join(opslib.DEPLOY_DIR, "grafana", "camtunnel-manager.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        self.assertGreater(len(exprs), 30)
        for expr in exprs:
            q = expr.replace("$__rate_interval", "5s").replace("$instance", ".*")
            self.assertNotIn("$", re.sub(r"\{\{[^}]*\}\}", "", q), expr)
            self.prom.query(q)  # raises unless Prometheus accepts it
        self.assertEqual(self.prom.query(
            'sum(camtunnel_manager_leader{instance=~".*"})')[0]["value"][1], "1")
        self.assertEqual(self.prom.query(
            'count(count by (sha256) (camtunnel_manager_config_info{instance=~".*"}))'
        )[0]["value"][1], "1")


if __name__ == "__main__":
    unittest.main(verbosity=2)
