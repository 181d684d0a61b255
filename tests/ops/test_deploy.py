#!/usr/bin/python3
"""deploy/: systemd units, example env files, kernel settings, Prometheus config and alert rules,
Grafana dashboards (gateway, agentsim, manager). Each file is checked by the tool that consumes it
(systemd-analyze, promtool, sysctl's names in /proc/sys), the example env files actually boot a
gateway and an agent, and the dashboards' queries read names that a running gateway, a running
camtunnel-agentsim and a running camtunnel-manager expose.
"""

import json
import os
import re
import shutil
import socket
import tempfile
import tomllib
import unittest

import opslib
from opslib import DEPLOY_DIR, OPS_DIR, Processes, make_dev_cert, wait_until

UNITS = {"gateway": os.path.join(DEPLOY_DIR, "systemd", "camtunnel-gateway.service"),
         "agent": os.path.join(DEPLOY_DIR, "systemd", "camtunnel-agent.service")}
ENV_FILES = {"gateway": os.path.join(DEPLOY_DIR, "env", "gateway.env"),
             "agent": os.path.join(DEPLOY_DIR, "env", "agent.env")}
CONFIG_FILE = os.path.join(DEPLOY_DIR, "config", "gateway.toml")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def parse_unit(path):
    """{section: {key: [values]}} of a unit file (comments and blank lines skipped)."""
    sections, current = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def parse_env_file(path):
    """EnvironmentFile= semantics for the simple files we ship: KEY=VALUE, '#' comments."""
    env = {}
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def exec_start_argv(unit, env):
    """ExecStart as systemd runs it: an unbraced $VAR is split on whitespace."""
    (cmd,) = unit["Service"]["ExecStart"]
    argv = []
    for word in cmd.split():
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            if m.group(1) not in env:
                raise AssertionError("%s is not set by the env file" % word)
            argv += env[m.group(1)].split()
        else:
            argv.append(word)
    return argv


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class UnitFilesTest(unittest.TestCase):
    def test_gateway_unit_settings(self):
        u = parse_unit(UNITS["gateway"])
        s = u["Service"]
        expect = {
            "Type": ["notify"], "NotifyAccess": ["main"], "User": ["camtunnel"],
            "EnvironmentFile": ["/etc/camtunnel/gateway.env"],
            "ExecReload": ["/usr/bin/camtunnel-gateway --config /etc/camtunnel/gateway.toml "
                           "$CAMTUNNEL_GATEWAY_OPTS --check_config", "/bin/kill -HUP $MAINPID"],
            "LimitNOFILE": ["1048576"],
            "NoNewPrivileges": ["yes"], "ProtectSystem": ["strict"], "ProtectHome": ["yes"],
            "PrivateTmp": ["yes"], "CapabilityBoundingSet": ["CAP_NET_BIND_SERVICE"],
            "AmbientCapabilities": ["CAP_NET_BIND_SERVICE"],
            "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
            "SystemCallArchitectures": ["native"], "StateDirectory": ["camtunnel"],
            "ConfigurationDirectory": ["camtunnel"],
        }
        self.assertEqual({k: s.get(k) for k in expect}, expect)
        with open(UNITS["gateway"]) as f:
            self.assertNotIn("TODO", f.read())
        # The drain after SIGTERM lasts up to drain_timeout_ms, then up to 2 s of shutdown:
        # systemd must not kill the gateway before.
        (stop,) = s["TimeoutStopSec"]
        with open(CONFIG_FILE, "rb") as f:
            drain_ms = tomllib.load(f)["drain_timeout_ms"]
        self.assertGreaterEqual(int(stop.rstrip("s")) * 1000, drain_ms + 3000)
        self.assertEqual(u["Install"]["WantedBy"], ["multi-user.target"])
        self.assertEqual(exec_start_argv(u, parse_env_file(ENV_FILES["gateway"]))[0],
                         "/usr/bin/camtunnel-gateway")

    def test_agent_unit_settings(self):
        u = parse_unit(UNITS["agent"])
        s = u["Service"]
        for key, value in {"Type": "simple", "User": "camtunnel", "NoNewPrivileges": "yes",
                           "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                           "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
                           "SystemCallArchitectures": "native",
                           "EnvironmentFile": "/etc/camtunnel/agent.env",
                           "Restart": "always"}.items():
            self.assertEqual(s.get(key), [value], key)
        self.assertEqual(s.get("CapabilityBoundingSet"), [""], "the agent only dials out")
        self.assertEqual(exec_start_argv(u, parse_env_file(ENV_FILES["agent"]))[0],
                         "/usr/bin/camtunnel-agent")

    @unittest.skipUnless(SYSTEMD_ANALYZE, "systemd-analyze not installed")
    def test_systemd_analyze_verify(self):
        # verify insists that ExecStart's program exists: point it at the built binaries.
        with tempfile.TemporaryDirectory(prefix="ops-units-") as d:
            paths = []
            for name, src in UNITS.items():
                with open(src) as f:
                    text = f.read().replace("/usr/bin/camtunnel-" + name,
                                            opslib.binary("camtunnel-" + name))
                paths.append(os.path.join(d, os.path.basename(src)))
                with open(paths[-1], "w") as f:
                    f.write(text)
            r = opslib.run([SYSTEMD_ANALYZE, "verify"] + paths)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    @unittest.skipUnless(SYSTEMD_ANALYZE, "systemd-analyze not installed")
    def test_systemd_analyze_security(self):
        for path in UNITS.values():
            r = opslib.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=20",
                            "--no-pager", path])
            self.assertEqual(r.returncode, 0, r.stdout[-600:] + r.stderr)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
            self.assertIsNotNone(m, r.stdout[-300:])
            self.assertLessEqual(float(m.group(1)), 2.0, path)


def localized_gateway_config(directory, cert, key, keys):
    """deploy/config/gateway.toml with only paths and ports made local; returns its path."""
    with open(CONFIG_FILE, "rb") as f:
        config = tomllib.load(f)
    local = {"/etc/camtunnel/tls/gateway.crt": cert, "/etc/camtunnel/tls/gateway.key": key,
             "/etc/camtunnel/streamer.keys": keys,
             "/var/lib/camtunnel/ticket.keys": os.path.join(directory, "ticket.keys")}
    lines = []
    for k, v in config.items():
        if k.endswith("_listen"):
            v = ["[::1]:0" if x.startswith("[") else "127.0.0.1:0" for x in v
                 if ipv6_loopback() or not x.startswith("[")]
        elif isinstance(v, str):
            v = local.get(v, v)
        lines.append("%s = %s" % (k, opslib.toml_value(v)))
    path = os.path.join(directory, "gateway.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class ConfigurationReferenceTest(unittest.TestCase):
    """docs/configuration.md documents exactly the keys the gateway accepts."""

    def test_documented_keys_are_the_accepted_keys(self):
        with open(os.path.join(opslib.SOURCE_DIR, "gateway", "config_file.cc")) as f:
            accepted = set(re.findall(r'\{"([a-z_]+)", (?:List|String|Bool|Number)\(', f.read()))
        with open(os.path.join(opslib.SOURCE_DIR, "docs", "configuration.md")) as f:
            doc = f.read()
        section = doc[doc.index("## camtunnel-gateway"):doc.index("## camtunnel-agent")
                      if "## camtunnel-agent" in doc else len(doc)]
        documented = set(re.findall(r"^\| `([a-z_]+)`", section, re.M))
        self.assertGreaterEqual(len(accepted), 25)
        self.assertEqual(accepted - documented, set(), "accepted but not documented")
        self.assertEqual(documented - accepted, set(), "documented but not accepted")

    def test_example_uses_only_known_keys(self):
        with open(CONFIG_FILE, "rb") as f:
            keys = set(tomllib.load(f))
        with open(os.path.join(opslib.SOURCE_DIR, "gateway", "config_file.cc")) as f:
            accepted = set(re.findall(r'\{"([a-z_]+)", (?:List|String|Bool|Number)\(', f.read()))
        self.assertEqual(keys - accepted, set())


class ExampleEnvFilesBootTest(unittest.TestCase):
    """deploy/env/*.env as the units would pass them, with only paths and ports made local."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="ops-env-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.procs = Processes(os.path.join(self.dir, "logs"))
        self.addCleanup(self.procs.stop_all)

    def test_gateway_and_agent_boot_from_the_examples(self):
        d = self.dir
        gw_bin, agent_bin = opslib.binary("camtunnel-gateway"), opslib.binary("camtunnel-agent")
        cert, key = make_dev_cert(d)
        keys = opslib.write_streamer_keys(gw_bin, d)
        echo = opslib.EchoServer()
        self.addCleanup(echo.close)

        argv = exec_start_argv(parse_unit(UNITS["gateway"]), parse_env_file(ENV_FILES["gateway"]))
        self.assertEqual(argv[1:], ["--config", "/etc/camtunnel/gateway.toml"])
        config = localized_gateway_config(d, cert, key, keys)
        args = ["--config", config]
        r = opslib.run([gw_bin] + args + ["--check_config"])
        self.assertEqual((r.returncode, r.stdout), (0, "camtunnel-gateway: configuration OK\n"),
                         r.stderr)
        p = self.procs.start("gateway", [gw_bin] + args)
        gw = opslib.Gateway(p, p.wait_line(opslib.READY, timeout=10))
        self.assertGreater(gw.tls_port, 0)
        # The session ticket keys file is made on first start, private to the gateway.
        self.assertEqual(os.stat(os.path.join(d, "ticket.keys")).st_mode & 0o777, 0o600)

        key_ref, key_file = opslib.derive_agent_key(gw_bin, keys, "cam-1", d)
        argv = exec_start_argv(parse_unit(UNITS["agent"]), parse_env_file(ENV_FILES["agent"]))
        replace = {"--gateway": "https://localhost:%d" % gw.tls_port, "--key_ref": key_ref,
                   "--key_file": key_file, "--ca_file": cert}
        services = iter(["rtsp=127.0.0.1:%d" % echo.port, "http=127.0.0.1:%d" % echo.port])
        args, i = [], 1
        while i < len(argv):
            flag, value = argv[i], argv[i + 1]
            self.assertTrue(flag.startswith("--"), argv)
            if flag == "--service":
                value = next(services)
            args += [flag, replace.get(flag, value)]
            i += 2
        self.procs.start("agent", [agent_bin] + args)
        wait_until(lambda: "cam-1" in opslib.agent_ids(gw), 10, 0.05, "example agent connected")
        status, body = opslib.http("GET", gw.url("/api/v1/agents/cam-1"))
        self.assertEqual(status, 200)
        self.assertEqual(sorted(s["name"] for s in json.loads(body)["services"]),
                         ["http", "rtsp"])


class PrometheusFilesTest(unittest.TestCase):
    def test_promtool_check_rules(self):
        r = opslib.run([opslib.PROMTOOL, "check", "rules",
                        os.path.join(DEPLOY_DIR, "prometheus", "camtunnel-alerts.yml")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    def test_promtool_alert_unit_tests(self):
        r = opslib.run([opslib.PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=OPS_DIR)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_every_alert_is_tested_and_documented(self):
        with open(os.path.join(DEPLOY_DIR, "prometheus", "camtunnel-alerts.yml")) as f:
            alerts = set(re.findall(r"^\s*- alert: (\w+)", f.read(), re.M))
        with open(os.path.join(OPS_DIR, "alerts_test.yml")) as f:
            tested = set(re.findall(r"alertname: (\w+)", f.read()))
        with open(os.path.join(opslib.SOURCE_DIR, "docs", "operations.md")) as f:
            documented = set(re.findall(r"`(Camtunnel\w+)`", f.read()))
        self.assertGreaterEqual(len(alerts), 8)
        self.assertEqual(alerts - tested, set(), "alerts without a promtool test")
        self.assertEqual(alerts - documented, set(), "alerts not explained in operations.md")

    def test_promtool_check_config(self):
        r = opslib.run([opslib.PROMTOOL, "check", "config",
                        os.path.join(DEPLOY_DIR, "prometheus", "prometheus.yml")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("1 rule files found", r.stdout)


class SysctlTest(unittest.TestCase):
    def test_every_setting_exists_and_is_numeric(self):
        path = os.path.join(DEPLOY_DIR, "sysctl", "99-camtunnel.conf")
        settings = parse_env_file(path)
        self.assertGreaterEqual(len(settings), 8)
        for key in ("fs.file-max", "fs.nr_open", "net.core.somaxconn",
                    "net.ipv4.tcp_max_syn_backlog", "net.ipv4.ip_local_port_range",
                    "net.ipv4.tcp_tw_reuse", "net.core.netdev_budget"):
            self.assertIn(key, settings)
        for key, value in settings.items():
            proc = os.path.join("/proc/sys", key.replace(".", "/"))
            self.assertTrue(os.path.exists(proc), "%s: no such kernel setting" % key)
            for word in value.replace(",", " ").split():
                self.assertRegex(word, r"^\d+$", key)
        # systemd can only apply LimitNOFILE up to fs.nr_open.
        (limit,) = parse_unit(UNITS["gateway"])["Service"]["LimitNOFILE"]
        self.assertGreaterEqual(int(settings["fs.nr_open"]), int(limit))
        self.assertGreaterEqual(int(settings["fs.file-max"]), int(limit))
        low, high = map(int, settings["net.ipv4.ip_local_port_range"].split())
        self.assertLess(low, high)


RED = {"red", "dark-red", "semi-dark-red", "light-red"}


def exposed_names(metrics):
    """Metric names a scrape exposes: every sample's name, plus every family it declares with
    # TYPE (a labelled counter nothing has counted yet, e.g. agentsim's failures by reason, has
    its header but no sample), histograms and summaries with their series suffixes."""
    names = set(metrics.names())
    for family, kind in metrics.types.items():
        names.add(family)
        if kind in ("histogram", "summary"):
            names |= {family + "_sum", family + "_count"}
        if kind == "histogram":
            names.add(family + "_bucket")
    return names


def overlaps(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def stands_out(panel, target):
    """Whether the series of `target` is drawn so that it cannot be missed: a stat whose
    background turns red above 0, a panel drawn in fixed red, or an override that paints
    this very series red."""
    defaults = panel["fieldConfig"]["defaults"]
    color = defaults.get("color", {})
    if color.get("mode") == "fixed" and color.get("fixedColor") in RED:
        return True
    if (panel["type"] == "stat" and panel["options"].get("colorMode") == "background"
            and color.get("mode") == "thresholds"):
        steps = [st for st in defaults.get("thresholds", {}).get("steps", [])
                 if st["value"] is not None]
        if steps and steps[0]["color"] in RED and 0 <= steps[0]["value"] < 1e-3:
            return True
    for o in panel["fieldConfig"]["overrides"]:
        m, legend = o["matcher"], target.get("legendFormat", "")
        hit = ((m["id"] == "byName" and m["options"] == legend)
               or (m["id"] == "byRegexp" and re.search(m["options"], legend))
               or (m["id"] == "byFrameRefID" and m["options"] == target["refId"]))
        if hit and any(p["id"] == "color" and p["value"].get("fixedColor") in RED
                       for p in o["properties"]):
            return True
    return False


class DashboardChecks:
    """What every dashboard of deploy/grafana/ must satisfy; mixed into one TestCase per file.

    A subclass sets FILE, UID, TITLE, TOPICS (words the panel titles must contain), MUST_QUERY
    (metric names some query must read), and scrape_names() (the names a real process exposes,
    scraped once per class). A process that exports a latency histogram (HISTOGRAM) must have
    its p99 drawn."""

    FILE = UID = TITLE = None
    TOPICS = MUST_QUERY = ()
    HISTOGRAM = True
    _names = None

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(DEPLOY_DIR, "grafana", cls.FILE)) as f:
            cls.dash = json.load(f)

    def names(self):
        cls = type(self)
        if cls._names is None:
            cls._names = self.scrape_names()
        return cls._names

    def panels(self):
        return [p for p in self.dash["panels"] if p["type"] != "row"]

    def targets(self):
        """(panel, target) of every query."""
        return [(p, t) for p in self.panels() for t in p.get("targets", [])]

    def queried(self):
        return {n for _, t in self.targets() for n in re.findall(r"\bcamtunnel_[a-z0-9_]+",
                                                                  t["expr"])}

    def test_structure(self):
        d = self.dash
        self.assertEqual((d["uid"], d["title"]), (self.UID, self.TITLE))
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        for p in d["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            self.assertTrue(g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0, p["title"])
        for i, a in enumerate(d["panels"]):
            for b in d["panels"][i + 1:]:
                self.assertFalse(overlaps(a["gridPos"], b["gridPos"]),
                                 "%s overlaps %s" % (a["title"], b["title"]))
        variables = {v["name"] for v in d["templating"]["list"]}
        self.assertEqual(variables, {"datasource", "instance"})
        for p in self.panels():
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            for t in p.get("targets", []):
                self.assertEqual(t["datasource"]["uid"], "${datasource}", p["title"])
        titles = " ".join(p["title"].lower() for p in self.panels())
        for topic in self.TOPICS:
            self.assertIn(topic, titles)

    def test_every_query_reads_existing_camtunnel_metrics(self):
        names = self.names()
        exprs = []
        for p in self.panels():
            self.assertTrue(p.get("targets"), "%s has no query" % p["title"])
            for t in p["targets"]:
                expr = t["expr"]
                exprs.append(expr)
                used = re.findall(r"\bcamtunnel_[a-z0-9_]+", expr)
                self.assertTrue(used, "%s: %s reads no camtunnel_ metric" % (p["title"], expr))
                self.assertEqual(set(used) - names, set(), "%s: unknown metric" % p["title"])
                # Every selector is restricted to the chosen instances.
                self.assertEqual(len(re.findall(r'\bcamtunnel_[a-z0-9_]+\{instance=~"\$instance"',
                                                expr)), len(used), expr)
                for var in re.findall(r"\$(\w+)", expr):
                    self.assertIn(var, ("instance", "__rate_interval"), expr)
        for must in self.MUST_QUERY:
            self.assertIn(must, self.queried())
        if self.HISTOGRAM:
            self.assertTrue(any("histogram_quantile(0.99" in e for e in exprs))
        # The instance picker lists the processes exposing a metric of theirs.
        (instance,) = [v for v in self.dash["templating"]["list"] if v["name"] == "instance"]
        m = re.fullmatch(r"label_values\((camtunnel_[a-z0-9_]+), instance\)",
                         instance["query"]["query"])
        self.assertIsNotNone(m, instance["query"])
        self.assertIn(m.group(1), names)

    def test_every_query_parses(self):
        """promtool parses each expression (as a recording rule), Grafana's variables
        replaced as Grafana would."""
        with tempfile.TemporaryDirectory(prefix="ops-dash-rules-") as d:
            path = os.path.join(d, "dashboard-rules.yml")
            with open(path, "w") as f:
                f.write("groups:\n  - name: dashboard\n    rules:\n")
                for i, (_, t) in enumerate(self.targets()):
                    q = t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
                    f.write("      - record: dashboard:q%d\n        expr: %s\n" % (i, json.dumps(q)))
            r = opslib.run([opslib.PROMTOOL, "check", "rules", path])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class DashboardTest(DashboardChecks, unittest.TestCase):
    """deploy/grafana/camtunnel-gateway.json against a real gateway's /metrics."""

    FILE, UID, TITLE = "camtunnel-gateway.json", "camtunnel-gateway", "camtunnel gateway"
    TOPICS = ("agents", "tunnels", "latency", "bytes", "error", "shard")
    MUST_QUERY = ("camtunnel_agents_connected", "camtunnel_tunnels_open",
                  "camtunnel_tunnel_open_seconds_bucket", "camtunnel_relay_bytes_total",
                  "camtunnel_frontend_requests_total", "camtunnel_tunnels_opened_total",
                  "camtunnel_shard_agents_connected", "camtunnel_shard_handoffs_total",
                  "camtunnel_shards", "camtunnel_frontend_held_total")

    def scrape_names(self):
        with tempfile.TemporaryDirectory(prefix="ops-dash-") as d:
            with Processes(d) as procs:
                gw_bin = opslib.binary("camtunnel-gateway")
                cert, key = make_dev_cert(d)
                gw = opslib.start_gateway(procs, gw_bin, cert, key,
                                          opslib.write_streamer_keys(gw_bin, d))
                names = opslib.scrape(gw.admin_port).names()
        for n in ("camtunnel_agents_connected", "camtunnel_shard_agents_connected",
                  "camtunnel_shard_handoffs_total", "camtunnel_frontend_held_total"):
            self.assertIn(n, names)
        return names

    def test_shards_row(self):
        rows = [p for p in self.dash["panels"] if p["type"] == "row"]
        self.assertIn("Shards", [r["title"] for r in rows])
        targets = self.targets()

        def reading(metric):
            return [(p, t) for p, t in targets if re.search(r"\b%s\{" % metric, t["expr"])]
        # Balance: agents per shard, the shard label kept.
        self.assertTrue(any("{{shard}}" in t["legendFormat"]
                            for _, t in reading("camtunnel_shard_agents_connected")))
        # Hand-overs by result, queue_full (a 503) in red wherever it is drawn.
        handoffs = reading("camtunnel_shard_handoffs_total")
        self.assertTrue(any("{{result}}" in t["legendFormat"] for _, t in handoffs))
        queue_full = [(p, t) for p, t in handoffs if 'result="queue_full"' in t["expr"]]
        self.assertTrue(queue_full, "no query shows queue_full on its own")
        for p, t in queue_full:
            self.assertTrue(stands_out(p, t), "%s: queue_full does not stand out" % p["title"])
        self.assertTrue(reading("camtunnel_shards"))
        self.assertTrue(any("{{result}}" in t["legendFormat"]
                            for _, t in reading("camtunnel_frontend_held_total")))


class AgentsimDashboardTest(DashboardChecks, unittest.TestCase):
    """deploy/grafana/camtunnel-agentsim.json against a real camtunnel-agentsim's /metrics
    (--metrics_listen), scraped while it drives a small load through a real gateway."""

    FILE, UID, TITLE = "camtunnel-agentsim.json", "camtunnel-agentsim", "camtunnel agentsim"
    TOPICS = ("agents", "opens", "latency", "bytes", "integrity", "rtsp", "snapshots")
    MUST_QUERY = tuple("camtunnel_agentsim_" + n for n in (
        "agents", "agents_up", "agent_connect_attempts_total", "agent_failures_total",
        "agent_reconnects_total", "opens_total", "open_latency_seconds_bucket",
        "media_received_bytes_total", "verified_bytes_total", "integrity_errors_total",
        "live_integrity_errors", "rtsp_sessions", "snapshots_total"))
    TRAFFIC = {"camtunnel_agentsim_opens_total", "camtunnel_agentsim_open_latency_seconds_bucket",
               "camtunnel_agentsim_rtsp_sessions_ended_total", "camtunnel_agentsim_snapshots_total"}

    def scrape_names(self):
        # 5 agents, 2 one-second RTSP streams, 10 snapshots/s: a few seconds at most, then the
        # agentsim and the gateway are stopped by PID (Processes), long before --duration.
        with tempfile.TemporaryDirectory(prefix="ops-dash-sim-") as d:
            with Processes(d) as procs:
                gw_bin = opslib.binary("camtunnel-gateway")
                cert, key = make_dev_cert(d)
                keys = opslib.write_streamer_keys(gw_bin, d)
                gw = opslib.start_gateway(procs, gw_bin, cert, key, keys)
                sim = procs.start("agentsim", [
                    opslib.binary("camtunnel-agentsim"), "steady",
                    "--gateway_agent", "localhost:%d" % gw.tls_port, "--tls", "--ca", cert,
                    "--streamer_keys", keys, "--frontend", "127.0.0.1:%d" % gw.frontend_port,
                    "--agents", 5, "--streams", 2,
                    "--stream_seconds", 1, "--bitrate", "256k", "--snapshot_rate", 10,
                    "--duration", 20, "--metrics_listen", "127.0.0.1:0"])
                port = int(sim.wait_line(r"^agentsim: metrics port=(\d+)$", 30).group(1))
                sim.wait_line(r"^agentsim: agents-up 5/5", 30)

                def with_traffic():
                    m = opslib.scrape(port)
                    return m if self.TRAFFIC <= m.names() else None
                metrics = wait_until(with_traffic, 30, 0.2,
                                     "agentsim opens, ended RTSP sessions and snapshots")
        self.assertEqual(metrics.get("camtunnel_agentsim_agents_up"), 5)
        self.assertEqual(metrics.get("camtunnel_agentsim_agents"), 5)
        return exposed_names(metrics)

    def test_integrity_errors_stand_out(self):
        errors = [(p, t) for p, t in self.targets()
                  if re.search(r"camtunnel_agentsim_(live_)?integrity_errors", t["expr"])]
        self.assertTrue(any(p["type"] == "stat" for p, _ in errors), "no integrity stat")
        for p, t in errors:
            self.assertTrue(stands_out(p, t), "%s: integrity errors do not stand out" % p["title"])

    def test_open_latency_quantiles(self):
        exprs = [t["expr"] for _, t in self.targets()]
        for q in ("0.5", "0.99"):
            self.assertTrue(any(e.startswith("histogram_quantile(%s, sum by (le) (rate("
                                             "camtunnel_agentsim_open_latency_seconds_bucket" % q)
                                for e in exprs), q)


class ManagerDashboardTest(DashboardChecks, unittest.TestCase):
    """deploy/grafana/camtunnel-manager.json against a real camtunnel-manager's /metrics (its
    admin listener), on the default SQLite store, leading its deployment of one and probing a
    real gateway as its Streamer."""

    FILE, UID, TITLE = "camtunnel-manager.json", "camtunnel-manager", "camtunnel manager"
    TOPICS = ("links", "churn", "refusals", "activations", "commands", "database", "store",
              "leader", "streamer", "health", "pushes", "pruned", "config")
    MUST_QUERY = tuple("camtunnel_manager_" + n for n in (
        "links", "links_established_total", "links_replaced_total", "link_errors_total",
        "links_refused_busy_total", "accept_paced_total", "activations_total",
        "command_outcomes_total", "store_reachable", "store_write_errors_total", "store_pending",
        "leader", "leader_term", "leader_changes_total", "lease_renew_failures_total",
        "leader_fenced_out_total", "streamer_healthy", "health_checks_total",
        "health_moves_total", "revocations_pending", "relocations_pending",
        "history_pruned_total", "config_info"))
    HISTOGRAM = False  # the manager exports no latency histogram

    def scrape_names(self):
        with tempfile.TemporaryDirectory(prefix="ops-dash-mgr-") as d:
            with Processes(d) as procs:
                gw_bin = opslib.binary("camtunnel-gateway")
                cert, key = make_dev_cert(d)
                keys = opslib.write_streamer_keys(gw_bin, d)
                gw = opslib.start_gateway(procs, gw_bin, cert, key, keys)
                streamers = os.path.join(d, "streamers.txt")
                with open(streamers, "w") as f:
                    f.write("https://127.0.0.1:%d k1 %s http://127.0.0.1:%d\n"
                            % (gw.tls_port, keys, gw.admin_port))
                port = opslib.start_manager(procs, d, cert, key, streamers,
                                            ["--health_interval_ms=200"])

                def probing():
                    m = opslib.scrape(port)
                    ready = (m.get("camtunnel_manager_streamer_healthy", streamer=0) == 1
                             and m.get("camtunnel_manager_health_checks_total") > 0)
                    return m if ready else None
                metrics = wait_until(probing, 15, 0.1, "the manager finds its Streamer healthy")
        self.assertEqual(metrics.get("camtunnel_manager_leader"), 1)
        self.assertEqual(metrics.get("camtunnel_manager_store_reachable"), 1)
        self.assertEqual(metrics.get("camtunnel_manager_leader_changes_total", change="gained"), 1)
        return exposed_names(metrics)

    def reading(self, pattern):
        return [(p, t) for p, t in self.targets() if re.search(pattern, t["expr"])]

    def test_failures_stand_out(self):
        failures = (self.reading(r'outcome=~"expired\|refused"')
                    + self.reading(r"camtunnel_manager_store_write_errors_total")
                    + self.reading(r"camtunnel_manager_lease_renew_failures_total")
                    + self.reading(r"camtunnel_manager_leader_fenced_out_total")
                    + self.reading(r"1 - camtunnel_manager_store_reachable"))
        self.assertGreaterEqual(len(failures), 5)
        for p, t in failures:
            self.assertTrue(stands_out(p, t), "%s: %s does not stand out" % (p["title"],
                                                                             t["expr"]))
        # Commands by outcome: the failed outcomes in red among the others.
        (p, t), = [(p, t) for p, t in self.reading(r"camtunnel_manager_command_outcomes_total")
                   if "{{outcome}}/s" == t["legendFormat"]]
        for outcome in ("expired", "refused"):
            self.assertTrue(stands_out(p, dict(t, legendFormat=outcome + "/s")), outcome)
        self.assertFalse(stands_out(p, dict(t, legendFormat="acked/s")))

    def test_deployment_wide_views(self):
        """Several managers share one database: the panels that only make sense across all
        of them (one leader, one configuration, the total of links) aggregate without
        instance, and the per-manager ones keep it."""
        exprs = {t["expr"]: t["legendFormat"] for _, t in self.targets()}
        self.assertIn('sum(camtunnel_manager_leader{instance=~"$instance"})', exprs)
        self.assertIn('count(count by (sha256) (camtunnel_manager_config_info'
                      '{instance=~"$instance"}))', exprs)
        self.assertIn('sum(camtunnel_manager_links{instance=~"$instance"})', exprs)
        self.assertEqual(
            exprs['sum by (instance) (camtunnel_manager_links{instance=~"$instance"})'],
            "{{instance}}")
        self.assertEqual(exprs['camtunnel_manager_store_reachable{instance=~"$instance"}'],
                         "{{instance}}")
        self.assertTrue(any("{{streamer}}" in legend and "{{instance}}" in legend
                            for e, legend in exprs.items()
                            if "camtunnel_manager_streamer_healthy" in e))
        self.assertTrue(any("{{change}}" in legend for e, legend in exprs.items()
                            if "camtunnel_manager_leader_changes_total" in e))


class PrometheusScrapeJobsTest(unittest.TestCase):
    def test_gateway_agentsim_and_manager_jobs(self):
        with open(os.path.join(DEPLOY_DIR, "prometheus", "prometheus.yml")) as f:
            jobs = re.findall(r"^\s*- job_name: (\S+)", f.read(), re.M)
        self.assertEqual(sorted(jobs),
                         ["camtunnel-agentsim", "camtunnel-gateway", "camtunnel-manager"])

    def test_alerts_read_the_jobs_it_scrapes(self):
        """An alert on up{job=...} names a job of prometheus.yml, or it can never fire."""
        with open(os.path.join(DEPLOY_DIR, "prometheus", "prometheus.yml")) as f:
            jobs = set(re.findall(r"^\s*- job_name: (\S+)", f.read(), re.M))
        with open(os.path.join(DEPLOY_DIR, "prometheus", "camtunnel-alerts.yml")) as f:
            read = set(re.findall(r'\bup\{job="([^"]+)"\}', f.read()))
        self.assertIn("camtunnel-manager", read)
        self.assertEqual(read - jobs, set())


if __name__ == "__main__":
    unittest.main(verbosity=2)
