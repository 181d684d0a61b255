#!/usr/bin/python3
"""The Debian packages (cmake/packaging.cmake): cpack builds camtunnel-gateway, camtunnel-agent,
camtunnel-manager and camtunnel-agentsim from the build tree into a temporary directory; each
.deb's control data and file list are checked, all are unpacked with dpkg-deb -x into a
temporary root, and the packaged binaries run from there: key generation, a gateway answering
/healthz, an agent connecting to it, a manager started with its packaged defaults.
"""

import json
import os
import shlex
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import opslib
from opslib import DEPLOY_DIR, Processes, make_dev_cert, wait_until

CPACK = shutil.which("cpack") or "/usr/bin/cpack"
# Packages with a unit, a user and conffiles.
SERVICES = ("camtunnel-gateway", "camtunnel-agent", "camtunnel-manager")


def project_version():
    with open(os.path.join(opslib.SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(camtunnel\s+VERSION\s+([0-9.]+)", f.read()).group(1)


def deb_arch():
    return subprocess.run(["dpkg", "--print-architecture"], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


class PackagesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        config = os.path.join(opslib.build_dir(), "CPackConfig.cmake")
        if not os.path.isfile(config):
            raise AssertionError("%s missing: configure the build with cmake/packaging.cmake "
                                 "included (cmake --preset release)" % config)
        cls.tmp = tempfile.TemporaryDirectory(prefix="ops-packages-")
        cls.out = os.path.join(cls.tmp.name, "packages")
        r = opslib.run([CPACK, "--config", config, "-B", cls.out], timeout=120)
        if r.returncode != 0:
            cls.tmp.cleanup()
            raise AssertionError("cpack failed:\n%s%s" % (r.stdout, r.stderr))
        cls.version = "%s-1" % project_version()
        cls.arch = deb_arch()
        cls.debs = {}
        for name in SERVICES + ("camtunnel-agentsim",):
            cls.debs[name] = os.path.join(cls.out, "%s_%s_%s.deb" % (name, cls.version, cls.arch))
        cls.root = os.path.join(cls.tmp.name, "root")
        for path in cls.debs.values():
            if os.path.isfile(path):
                subprocess.run(["dpkg-deb", "-x", path, cls.root], check=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def field(self, deb, name):
        return opslib.run(["dpkg-deb", "-f", self.debs[deb], name]).stdout.strip()

    def listing(self, deb):
        """{path: mode string} of the package's files (dpkg-deb -c)."""
        out = opslib.run(["dpkg-deb", "-c", self.debs[deb]]).stdout
        files = {}
        for line in out.splitlines():
            parts = line.split()
            path = parts[5][1:]  # "./usr/bin/x" -> "/usr/bin/x"
            if not parts[0].startswith("d"):
                files[path] = parts[0]
        return files

    def control(self, deb):
        d = os.path.join(self.tmp.name, "control-" + deb)
        if not os.path.isdir(d):
            subprocess.run(["dpkg-deb", "-e", self.debs[deb], d], check=True)
        return d

    # ---- what cpack produced -----------------------------------------------------------------

    def test_four_packages_named_by_version_and_arch(self):
        produced = sorted(f for f in os.listdir(self.out) if f.endswith(".deb"))
        self.assertEqual(produced, sorted(os.path.basename(p) for p in self.debs.values()))

    def test_control_fields(self):
        for deb in self.debs:
            self.assertEqual(self.field(deb, "Package"), deb)
            self.assertEqual(self.field(deb, "Version"), self.version)
            self.assertEqual(self.field(deb, "Architecture"), self.arch)
            self.assertTrue(self.field(deb, "Maintainer"))
            self.assertTrue(self.field(deb, "Description").startswith("camtunnel "), deb)
        # Dependencies come from dpkg-shlibdeps (versioned), plus adduser for the postinst.
        gw = self.field("camtunnel-gateway", "Depends")
        for dep in ("adduser", "libc6 (>=", "libssl3 (>=", "liburing2 (>=", "libabsl",
                    "libprometheus-cpp-core", "libsystemd0", "libtomlplusplus3"):
            self.assertIn(dep, gw)
        sim = self.field("camtunnel-agentsim", "Depends")
        for dep in ("libc6 (>=", "libssl3 (>=", "liburing2 (>=", "zlib1g"):
            self.assertIn(dep, sim)
        self.assertNotIn("adduser", sim, "no service, no user")
        agent = self.field("camtunnel-agent", "Depends")
        for dep in ("adduser", "libc6 (>=", "libssl3 (>="):
            self.assertIn(dep, agent)
        for absent in ("liburing", "libabsl", "libprometheus"):
            self.assertNotIn(absent, agent, "the agent must stay light")
        mgr = self.field("camtunnel-manager", "Depends")
        for dep in ("adduser", "libc6 (>=", "libssl3 (>=", "liburing2 (>=", "libsqlite3-0 (>=",
                    "libpq5 (>=", "libabsl"):
            self.assertIn(dep, mgr)

    def test_file_lists(self):
        expected = {
            "camtunnel-gateway": {
                "/usr/bin/camtunnel-gateway", "/usr/lib/systemd/system/camtunnel-gateway.service",
                "/etc/camtunnel/gateway.env", "/etc/camtunnel/gateway.toml",
                "/usr/share/doc/camtunnel-gateway/operations.md",
                "/usr/share/doc/camtunnel-gateway/configuration.md",
                "/usr/share/doc/camtunnel-gateway/examples/99-camtunnel.conf",
                "/usr/share/doc/camtunnel-gateway/examples/prometheus.yml",
                "/usr/share/doc/camtunnel-gateway/examples/camtunnel-alerts.yml",
                "/usr/share/doc/camtunnel-gateway/examples/camtunnel-gateway.json"},
            "camtunnel-agent": {
                "/usr/bin/camtunnel-agent", "/usr/lib/systemd/system/camtunnel-agent.service",
                "/etc/camtunnel/agent.env", "/usr/share/doc/camtunnel-agent/operations.md",
                "/usr/share/doc/camtunnel-agent/configuration.md"},
            "camtunnel-manager": {
                "/usr/bin/camtunnel-manager", "/usr/lib/systemd/system/camtunnel-manager.service",
                "/etc/camtunnel/manager.env", "/usr/share/doc/camtunnel-manager/manager.md",
                "/usr/share/doc/camtunnel-manager/operations.md",
                "/usr/share/doc/camtunnel-manager/configuration.md"},
            "camtunnel-agentsim": {
                "/usr/bin/camtunnel-agentsim", "/usr/share/doc/camtunnel-agentsim/README.md",
                "/usr/share/doc/camtunnel-agentsim/examples/camtunnel-agentsim.json"},
        }
        for deb, want in expected.items():
            files = self.listing(deb)
            self.assertEqual(set(files), want, deb)
            binary = "/usr/bin/" + deb
            self.assertEqual(files[binary], "-rwxr-xr-x")
            for path, mode in files.items():
                if path != binary:
                    self.assertEqual(mode, "-rw-r--r--", path)

    def test_packaged_files_are_the_repository_files(self):
        for name in ("gateway", "agent", "manager"):
            for packaged, source in (
                    ("usr/lib/systemd/system/camtunnel-%s.service" % name,
                     "systemd/camtunnel-%s.service" % name),
                    ("etc/camtunnel/%s.env" % name, "env/%s.env" % name)) + (
                    (("etc/camtunnel/gateway.toml", "config/gateway.toml"),)
                    if name == "gateway" else ()):
                with open(os.path.join(self.root, packaged), "rb") as a, \
                        open(os.path.join(DEPLOY_DIR, source), "rb") as b:
                    self.assertEqual(a.read(), b.read(), packaged)

    def test_maintainer_scripts_and_conffiles(self):
        conffiles = {"camtunnel-gateway": ["/etc/camtunnel/gateway.env",
                                           "/etc/camtunnel/gateway.toml"],
                     "camtunnel-agent": ["/etc/camtunnel/agent.env"],
                     "camtunnel-manager": ["/etc/camtunnel/manager.env"]}
        self.assertEqual(sorted(os.listdir(self.control("camtunnel-agentsim"))),
                         ["control", "md5sums"], "the load generator has no scripts")
        for deb in SERVICES:
            d = self.control(deb)
            with open(os.path.join(d, "conffiles")) as f:
                self.assertEqual(f.read().split(), conffiles[deb])
            for script in ("postinst", "prerm", "postrm"):
                path = os.path.join(d, script)
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o755, path)
                r = opslib.run(["sh", "-n", path])
                self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(d, "postinst")) as f:
                text = f.read()
            self.assertIn("adduser --system", text)
            self.assertNotIn("systemctl enable", text, "needs keys first: never auto-enabled")

    # ---- the packaged binaries run -----------------------------------------------------------

    def bin(self, name):
        return os.path.join(self.root, "usr", "bin", name)

    def test_agent_help(self):
        r = opslib.run([self.bin("camtunnel-agent"), "--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage: camtunnel-agent", r.stdout)

    def test_agentsim_help(self):
        r = opslib.run([self.bin("camtunnel-agentsim"), "--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("camtunnel-agentsim", r.stdout + r.stderr)

    def test_packaged_gateway_checks_its_packaged_config(self):
        # The packaged example names /etc paths that do not exist here: the check must say so
        # by key, not crash or pass.
        r = opslib.run([self.bin("camtunnel-gateway"), "--config",
                        os.path.join(self.root, "etc/camtunnel/gateway.toml"), "--check_config"])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("configuration error", r.stderr)

    def test_new_streamer_key_format(self):
        r = opslib.run([self.bin("camtunnel-gateway"), "new-streamer-key", "k1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"\Ak1 [0-9a-f]{64}\n\Z")

    def test_gateway_serves_and_agent_connects(self):
        d = os.path.join(self.tmp.name, "run")
        os.makedirs(d)
        with Processes(os.path.join(d, "logs")) as procs:
            gw_bin = self.bin("camtunnel-gateway")
            cert, key = make_dev_cert(d)
            keys = opslib.write_streamer_keys(gw_bin, d)
            gw = opslib.start_gateway(procs, gw_bin, cert, key, keys)
            self.assertEqual(opslib.http("GET", gw.url("/healthz")), (200, b"ok\n"))
            key_ref, key_file = opslib.derive_agent_key(gw_bin, keys, "cam-pkg", d)
            opslib.start_agent(procs, self.bin("camtunnel-agent"), gw, "cam-pkg", key_ref,
                               key_file, cert, ["rtsp=127.0.0.1:554"])
            wait_until(lambda: "cam-pkg" in opslib.agent_ids(gw), 10, 0.05,
                       "packaged agent connected to the packaged gateway")
            status = procs.stop_all()
        self.assertEqual(sorted(status.values()), [0, 0], status)

    def test_new_factory_master_format(self):
        r = opslib.run([self.bin("camtunnel-manager"), "new-factory-master"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"\A[0-9a-f]{64}\n\Z")

    def test_packaged_manager_runs_with_its_packaged_defaults(self):
        # The packaged env file's flags with the /etc paths pointed at files made here (the
        # ports made loopback ones), on top of the unit's own --store: the same command line
        # systemd would run.
        d = os.path.join(self.tmp.name, "run-manager")
        os.makedirs(d)
        with open(os.path.join(self.root, "etc/camtunnel/manager.env")) as f:
            opts = re.search(r"^CAMTUNNEL_MANAGER_OPTS=(.*)$", f.read(), re.M).group(1)
        with open(os.path.join(self.root, "usr/lib/systemd/system/camtunnel-manager.service")) as f:
            exec_start = re.search(r"^ExecStart=(.*)$", f.read(), re.M).group(1)
        cert, key = make_dev_cert(d)
        master = os.path.join(d, "factory_master")
        with open(master, "w") as f:
            f.write(opslib.run([self.bin("camtunnel-manager"), "new-factory-master"]).stdout)
        streamers = os.path.join(d, "streamers.txt")
        with open(streamers, "w") as f:
            f.write("# no gateway yet\n")
        paths = {"/etc/camtunnel/tls/manager.crt": cert, "/etc/camtunnel/tls/manager.key": key,
                 "/etc/camtunnel/factory_master": master,
                 "/etc/camtunnel/streamers.txt": streamers,
                 "/var/lib/camtunnel/manager.db": os.path.join(d, "manager.db"),
                 "0.0.0.0:7443": "127.0.0.1:0", "127.0.0.1:9320": "127.0.0.1:0",
                 "/usr/bin/": os.path.join(self.root, "usr/bin") + "/"}
        argv = shlex.split(exec_start.replace("$CAMTUNNEL_MANAGER_OPTS", opts))
        for i, arg in enumerate(argv):
            for old, new in paths.items():
                arg = arg.replace(old, new)
            argv[i] = arg
        self.assertTrue(argv[0].startswith(self.root), argv)
        with Processes(os.path.join(d, "logs")) as procs:
            p = procs.start("manager", argv)
            m = p.wait_line(r"^camtunnel-manager: ready port=(\d+) admin=(\d+)", 10)
            admin = "http://127.0.0.1:%s" % m.group(2)
            self.assertEqual(opslib.http("GET", admin + "/healthz")[0], 200)
            st, body = opslib.http("GET", admin + "/api/v1/agents")
            self.assertEqual((st, json.loads(body)),
                             (200, {"agents": [], "total": 0, "next_cursor": None}))
            status = procs.stop_all()
        self.assertEqual(list(status.values()), [0], status)
        self.assertTrue(os.path.isfile(os.path.join(d, "manager.db")))

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze not installed")
    def test_packaged_units_verify(self):
        paths = []
        for name in ("gateway", "agent", "manager"):
            src = os.path.join(self.root, "usr/lib/systemd/system/camtunnel-%s.service" % name)
            with open(src) as f:
                text = f.read().replace("/usr/bin/", os.path.join(self.root, "usr/bin") + "/")
            paths.append(os.path.join(self.tmp.name, "camtunnel-%s.service" % name))
            with open(paths[-1], "w") as f:
                f.write(text)
        r = opslib.run(["systemd-analyze", "verify"] + paths)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
