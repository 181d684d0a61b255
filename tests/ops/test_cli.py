#!/usr/bin/python3
"""The programs' command lines: `--help` on each of the four lists its flags with their defaults
(and the subcommands) and exits 0; the manager's store commands (new-secrets-key, reseal,
migrate) on SQLite files; flags are spelled with underscores everywhere; the agent still takes
the hyphenated spellings of earlier releases, naming each as deprecated.
"""

import os
import shutil
import sqlite3
import tempfile
import unittest

import opslib


class HelpTest(unittest.TestCase):
    def help(self, name, *extra):
        r = opslib.run([opslib.binary(name), "--help", *extra])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("No flags matched", r.stdout + r.stderr)
        return r.stdout

    def assert_lists(self, text, *expected):
        for line in expected:
            self.assertIn(line, text)

    def test_gateway_help_lists_flags_with_defaults_and_subcommands(self):
        out = self.help("camtunnel-gateway")
        self.assert_lists(out, '--frontend_listen (default: "127.0.0.1:8554,[::1]:8554")',
                          '--admin_listen (default: "127.0.0.1:9310")',
                          "--heartbeat_ms (default: 5000)", "--kernel_tls (default: true)",
                          "--valid_days (default: 30)", "new-streamer-key", "derive-key",
                          "rotate-ticket-keys", "--check_config")

    def test_manager_help_lists_flags_with_defaults_and_subcommands(self):
        out = self.help("camtunnel-manager")
        self.assert_lists(out, '--listen (default: "127.0.0.1:7443")',
                          '--store (default: "camtunnel-manager.db")',
                          '--role (default: "all")', "--activation_burst (default: 5)",
                          '--secrets_key_file (default: "")', "--force (default: false)",
                          "new-factory-master", "factory-secret", "new-secrets-key", "reseal",
                          "migrate --from=DB --to=DB")

    def test_agentsim_help_lists_flags_with_defaults_and_scenarios(self):
        out = self.help("camtunnel-agentsim")
        self.assert_lists(out, "--agents (default: 100)", '--gateway_agent (default: "")',
                          '--bitrate (default: "1M")', "--tls_resume (default: true)",
                          "--connect_concurrency (default: 256)", "steady", "churn", "storm",
                          "open-rate", "soak")
        self.assertNotIn("--flagfile", out)  # absl's own flags are not agentsim's

    def test_agent_help_lists_flags_with_defaults(self):
        out = self.help("camtunnel-agent")
        self.assert_lists(out, "usage: camtunnel-agent", "--agent_id ID", "--key_file PATH",
                          "--log_level LEVEL (default: info)",
                          "--reactivate_after_s N (default: 600)", "--no_kernel_tls")

    def test_help_wins_wherever_it_is(self):
        r = opslib.run([opslib.binary("camtunnel-gateway"), "derive-key", "-h"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--streamer_keys", r.stdout)


class ManagerStoreCommandsTest(unittest.TestCase):
    """new-secrets-key, reseal and migrate, on SQLite files (docs/manager.md, "Secrets at rest"
    and "Growing to PostgreSQL")."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ops-cli-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.keys = os.path.join(self.dir, "secrets.keys")

    def manager(self, *args):
        return opslib.run([opslib.binary("camtunnel-manager"), *args])

    def test_new_secrets_key_creates_a_private_file_and_appends(self):
        r = self.manager("new-secrets-key", "--secrets_key_file=" + self.keys)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.stat(self.keys).st_mode & 0o777, 0o600)
        r = self.manager("new-secrets-key", "--secrets_key_file", self.keys, "--key_id=9")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("key 9 added", r.stdout)
        with open(self.keys) as f:
            ids = [line.split()[0] for line in f if line.strip()]
        self.assertEqual(ids, ["1", "9"])
        os.chmod(self.keys, 0o640)
        r = self.manager("new-secrets-key", "--secrets_key_file=" + self.keys)
        self.assertEqual(r.returncode, 2)
        self.assertIn("chmod 600", r.stderr)

    def test_reseal_seals_clear_rows_and_migrate_copies_them(self):
        self.assertEqual(self.manager("new-secrets-key",
                                      "--secrets_key_file=" + self.keys).returncode, 0)
        src = os.path.join(self.dir, "src.db")
        open(src, "w").close()  # an empty SQLite file: the manager creates its schema
        r = self.manager("reseal", "--store=" + src, "--secrets_key_file=" + self.keys)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resealed 0", r.stdout)
        # Two rows as a manager before sealing wrote them: 32 clear bytes.
        secrets = {"cam-1": bytes(range(32)), "cam-2": bytes(range(100, 132))}
        db = sqlite3.connect(src)
        for agent, secret in secrets.items():
            db.execute("INSERT INTO agents (agent_id, secret, state, activated_at_ms) "
                       "VALUES (?, ?, 'active', 1)", (agent, secret))
        db.commit()
        db.close()
        r = self.manager("reseal", "--store=sqlite:" + src, "--secrets_key_file=" + self.keys)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resealed 2 agent secrets under key 1 (2 were stored in the clear", r.stdout)
        dst = os.path.join(self.dir, "dst.db")
        r = self.manager("migrate", "--from", src, "--to", dst,
                         "--secrets_key_file=" + self.keys)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("agents 2\n", r.stdout)
        for path in (src, dst):
            db = sqlite3.connect(path)
            rows = dict(db.execute("SELECT agent_id, secret FROM agents"))
            db.close()
            self.assertEqual(sorted(rows), sorted(secrets))
            for agent, stored in rows.items():
                self.assertEqual(len(stored), 62)  # version | key id | nonce | sealed | tag
                self.assertNotIn(secrets[agent], stored)
        # A destination holding agents is refused without --force.
        r = self.manager("migrate", "--from", src, "--to", dst,
                         "--secrets_key_file=" + self.keys)
        self.assertEqual(r.returncode, 2)
        self.assertIn("already holds 2 agents", r.stderr)
        r = self.manager("migrate", "--from", src, "--to", dst, "--force",
                         "--secrets_key_file=" + self.keys)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Without the key file, sealed rows are not readable.
        r = self.manager("migrate", "--from", src, "--to", os.path.join(self.dir, "x.db"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("no --secrets_key_file", r.stderr)

    def test_a_missing_store_is_refused_not_created(self):
        missing = os.path.join(self.dir, "missing.db")
        r = self.manager("migrate", "--from=" + missing, "--to=" + missing + "2")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no SQLite store", r.stderr)
        self.assertFalse(os.path.exists(missing))


class SpellingTest(unittest.TestCase):
    AGENT_ARGS = ["--gateway", "http://127.0.0.1:9", "--key-ref", "k1.1767225600",
                  "--service", "rtsp=127.0.0.1:554"]

    def test_agent_takes_hyphenated_flags_with_one_warning_each(self):
        # The key file does not exist: the agent stops right after the warnings (in the order
        # given), exit 2.
        r = opslib.run([opslib.binary("camtunnel-agent"), "--agent-id", "cam-1",
                        "--key-file", "/nonexistent/agent.key", *self.AGENT_ARGS])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cannot open --key_file /nonexistent/agent.key", r.stderr)
        warnings = [line for line in r.stderr.splitlines() if "is deprecated" in line]
        self.assertEqual(warnings, [
            "camtunnel-agent: warning: --agent-id is deprecated, use --agent_id",
            "camtunnel-agent: warning: --key-file is deprecated, use --key_file",
            "camtunnel-agent: warning: --key-ref is deprecated, use --key_ref"])

    def test_agent_underscore_flags_warn_about_nothing(self):
        r = opslib.run([opslib.binary("camtunnel-agent"), "--agent_id", "cam-1", "--key_ref",
                        "k1.1767225600", "--key_file", "/nonexistent/agent.key", "--gateway",
                        "http://127.0.0.1:9", "--service", "rtsp=127.0.0.1:554"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertNotIn("deprecated", r.stderr)

    def test_gateway_takes_either_spelling(self):
        # docs/configuration.md: --check-config is --check_config.
        for flag in ("--check_config", "--check-config"):
            r = opslib.run([opslib.binary("camtunnel-gateway"), flag])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("configuration error", r.stderr)

    def test_agentsim_hyphenated_flag_is_unknown(self):
        r = opslib.run([opslib.binary("camtunnel-agentsim"), "steady", "--gateway-agent",
                        "127.0.0.1:1"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("unknown flag --gateway-agent", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
