#!/usr/bin/python3
"""deploy/: systemd units, example env files, kernel settings, Prometheus config and alert rules,
Grafana dashboard. Each file is checked by the tool that consumes it (systemd-analyze, promtool,
sysctl's names in /proc/sys) and the example env files actually boot a gateway and an agent.
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
                           "$CAMTUNNEL_GATEWAY_OPTS --check-config", "/bin/kill -HUP $MAINPID"],
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
        r = opslib.run([gw_bin] + args + ["--check-config"])
        self.assertEqual((r.returncode, r.stdout), (0, "camtunnel-gateway: configuration OK\n"),
                         r.stderr)
        p = self.procs.start("gateway", [gw_bin] + args)
        gw = opslib.Gateway(p, p.wait_line(opslib.READY, timeout=10))
        self.assertGreater(gw.tls_port, 0)
        # The session ticket keys file is made on first start, private to the gateway.
        self.assertEqual(os.stat(os.path.join(d, "ticket.keys")).st_mode & 0o777, 0o600)

        key_ref, key_file = opslib.derive_agent_key(gw_bin, keys, "cam-1", d)
        argv = exec_start_argv(parse_unit(UNITS["agent"]), parse_env_file(ENV_FILES["agent"]))
        replace = {"--gateway": "https://localhost:%d" % gw.tls_port, "--key-ref": key_ref,
                   "--key-file": key_file, "--ca-file": cert}
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


class DashboardTest(unittest.TestCase):
    scraped_names = None  # metric names a real gateway exposes (scraped once)

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(DEPLOY_DIR, "grafana", "camtunnel-gateway.json")) as f:
            cls.dash = json.load(f)

    def names(self):
        if DashboardTest.scraped_names is None:
            with tempfile.TemporaryDirectory(prefix="ops-dash-") as d:
                with Processes(d) as procs:
                    gw_bin = opslib.binary("camtunnel-gateway")
                    cert, key = make_dev_cert(d)
                    gw = opslib.start_gateway(procs, gw_bin, cert, key,
                                              opslib.write_streamer_keys(gw_bin, d))
                    DashboardTest.scraped_names = opslib.scrape(gw.admin_port).names()
        return DashboardTest.scraped_names

    def panels(self):
        return [p for p in self.dash["panels"] if p["type"] != "row"]

    def test_structure(self):
        d = self.dash
        self.assertEqual((d["uid"], d["title"]), ("camtunnel-gateway", "camtunnel gateway"))
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        for p in d["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
        variables = {v["name"] for v in d["templating"]["list"]}
        self.assertEqual(variables, {"datasource", "instance"})
        titles = " ".join(p["title"].lower() for p in self.panels())
        for topic in ("agents", "tunnels", "latency", "bytes", "error"):
            self.assertIn(topic, titles)

    def test_every_query_reads_existing_camtunnel_metrics(self):
        names = self.names()
        self.assertIn("camtunnel_agents_connected", names)
        exprs = []
        for p in self.panels():
            self.assertTrue(p.get("targets"), "%s has no query" % p["title"])
            for t in p["targets"]:
                expr = t["expr"]
                exprs.append(expr)
                used = set(re.findall(r"\bcamtunnel_[a-z0-9_]+", expr))
                self.assertTrue(used, "%s: %s reads no camtunnel_ metric" % (p["title"], expr))
                self.assertEqual(used - names, set(), "%s: unknown metric" % p["title"])
                for var in re.findall(r"\$(\w+)", expr):
                    self.assertIn(var, ("instance", "__rate_interval"), expr)
        queried = {n for e in exprs for n in re.findall(r"\bcamtunnel_[a-z0-9_]+", e)}
        for must in ("camtunnel_agents_connected", "camtunnel_tunnels_open",
                     "camtunnel_tunnel_open_seconds_bucket", "camtunnel_relay_bytes_total",
                     "camtunnel_frontend_requests_total", "camtunnel_tunnels_opened_total"):
            self.assertIn(must, queried)
        self.assertTrue(any("histogram_quantile(0.99" in e for e in exprs))


if __name__ == "__main__":
    unittest.main(verbosity=2)
