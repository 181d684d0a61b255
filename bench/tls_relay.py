#!/usr/bin/python3
"""TLS tunnel relay: camtunnel-gateway against haproxy, stunnel and ssh -R, side by side.

Every contender relays the same iperf3 traffic between a TLS side (the camera's, where the
agent or its analogue dials in) and a plain side (the media server's), on loopback, with the
same cipher suite pinned for all (TLS 1.3 TLS_AES_128_GCM_SHA256 over X25519 through one
OpenSSL config; aes128-gcm@openssh.com for ssh). Bytes flow from the TLS side to the plain side
(decrypt in the relay), as video does. Measured per run: throughput (iperf3 receiver), the
relay process's CPU (utime + stime from /proc, all its threads and children), the machine's
total and softirq CPU (/proc/stat). The figure of merit is relay CPU in % of one core per
Gbit/s relayed; the ceiling row is `openssl speed` AES-128-GCM alone.

  chains (source iperf3 -> ... -> sink iperf3):
  camtunnel: iperf3 -c (-R) -> socat CONNECT bridge -> gateway frontend | gateway <=TLS= agent
             <- iperf3 -s (the "camera")
  haproxy:   iperf3 -c -> stunnel client =TLS=> haproxy (mode tcp, ssl on bind) -> iperf3 -s
  stunnel:   iperf3 -c -> stunnel client =TLS=> stunnel server -> iperf3 -s
  ssh-R:     iperf3 -c (-R) -> sshd's forwarded port | sshd <=ssh= ssh -R <- iperf3 -s

Loads: bulk (iperf3 defaults, 128 KiB writes) with 1 and 4 streams, as fast as it goes and paced
at 3 Gbit/s in all (the same throughput for every contender); camera-shaped (1,400-byte writes,
12 streams at 30 Mbit/s each: RTP-sized records at many streams' bitrates).

  sudo bench/tls_relay.py [--build build/release] [--seconds 10] [--only camtunnel,haproxy]
      [--json bench/results/tls_relay.json]

Needs iperf3, haproxy, stunnel4, socat, openssh-server (deploy/install-bench-deps.sh); ssh-R
needs root (sshd). Loopback only; every process is ours and ended by PID.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

from benchlib import RELAY_LOADS as LOADS, Camtunnel, free_port, run_contender, \
    wait_listening, wait_port, write_result

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CIPHER_SUITE = "TLS_AES_128_GCM_SHA256"
SSH_CIPHER = "aes128-gcm@openssh.com"


def write_tls_material(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem")],
                   check=True, capture_output=True)
    with open(os.path.join(d, "combined.pem"), "w") as out:
        for n in ("cert.pem", "key.pem"):
            with open(os.path.join(d, n)) as f:
                out.write(f.read())
    conf = os.path.join(d, "openssl.cnf")
    with open(conf, "w") as f:
        f.write("openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n"
                "[sys]\nCiphersuites = %s\nGroups = X25519\nMinProtocol = TLSv1.3\n"
                % CIPHER_SUITE)
    return conf


def stunnel_client(procs, d, name, accept_port, connect_port, env):
    conf = os.path.join(d, name + ".conf")
    with open(conf, "w") as f:
        f.write("foreground = yes\npid =\n[c]\nclient = yes\naccept = 127.0.0.1:%d\n"
                "connect = 127.0.0.1:%d\nverifyPeer = no\n" % (accept_port, connect_port))
    procs.start(name, ["stunnel4", conf], env)
    wait_listening(accept_port)


class Haproxy:
    name = "haproxy"
    reverse = False  # iperf3 client -> stunnel client (encrypts) -> haproxy decrypts

    def start(self, procs, d, build, sink_port, env):
        tls_port, self.port = free_port(), free_port()
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("global\n  nbthread 1\n  maxconn 4000\n"
                    "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
                    "  timeout server 60s\n"
                    "frontend tls\n  bind 127.0.0.1:%d ssl crt %s\n  default_backend cam\n"
                    "backend cam\n  server s1 127.0.0.1:%d\n"
                    % (tls_port, os.path.join(d, "combined.pem"), sink_port))
        p = procs.start("haproxy", ["haproxy", "-db", "-f", conf], env)
        wait_port(tls_port)
        stunnel_client(procs, d, "stunnel-client", self.port, tls_port, env)
        return p.pid


class Stunnel:
    name = "stunnel"
    reverse = False

    def start(self, procs, d, build, sink_port, env):
        tls_port, self.port = free_port(), free_port()
        conf = os.path.join(d, "stunnel-server.conf")
        with open(conf, "w") as f:
            f.write("foreground = yes\npid =\n[s]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                    "cert = %s\nkey = %s\n" % (tls_port, sink_port, os.path.join(d, "cert.pem"),
                                               os.path.join(d, "key.pem")))
        p = procs.start("stunnel-server", ["stunnel4", conf], env)
        wait_port(tls_port)
        stunnel_client(procs, d, "stunnel-client", self.port, tls_port, env)
        return p.pid


class SshR:
    name = "ssh-R"
    reverse = True   # the camera side (ssh client) forwards; the iperf3 server sends

    def start(self, procs, d, build, sink_port, env):
        if os.geteuid() != 0:
            raise RuntimeError("sshd needs root")
        os.makedirs("/run/sshd", exist_ok=True)
        for n in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            os.path.join(d, n)], check=True)
        shutil.copy(os.path.join(d, "user.pub"), os.path.join(d, "authorized_keys"))
        os.chmod(d, 0o700)
        sshd_port, self.port = free_port(), free_port()
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\n"
                    "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                    "Ciphers %s\nAllowTcpForwarding yes\nUsePAM no\nPidFile none\n"
                    "StrictModes no\n" % (sshd_port, os.path.join(d, "host"),
                                          os.path.join(d, "authorized_keys"), SSH_CIPHER))
        p = procs.start("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", conf], env)
        wait_port(sshd_port)
        procs.start("ssh", ["ssh", "-N", "-p", str(sshd_port), "-i", os.path.join(d, "user"),
                            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            "-o", "Ciphers=" + SSH_CIPHER, "-o", "ExitOnForwardFailure=yes",
                            "-R", "127.0.0.1:%d:127.0.0.1:%d" % (self.port, sink_port),
                            "root@127.0.0.1"], env)
        wait_listening(self.port)
        return p.pid


CONTENDERS = [Camtunnel, Haproxy, Stunnel, SshR]


def openssl_ceiling():
    """AES-128-GCM throughput of one core at 16 KiB blocks: the crypto floor of a relay."""
    r = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", "16384", "-evp",
                        "aes-128-gcm"], capture_output=True, text=True, check=True)
    m = re.search(r"^AES-128-GCM\s+([\d.]+)k", r.stdout, re.M | re.I)
    kbytes = float(m.group(1))
    gbit_per_core = kbytes * 1000 * 8 / 1e9
    return {"gbit_per_core": gbit_per_core, "cpu_pct_per_gbit": 100 / gbit_per_core}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build", "release"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--only", default="", help="comma-separated contenders")
    ap.add_argument("--loads", default="",
                    help="comma-separated loads (bulk-1,bulk-4,paced-1,paced-4,rtp-12)")
    ap.add_argument("--json", default=os.path.join(TOP, "bench", "results", "tls_relay.json"))
    ap.add_argument("--keep", help="keep configs and logs in this directory")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    loads = [l for l in LOADS if not a.loads or l[0] in a.loads.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-tls-relay-") as tmp:
        d = a.keep or tmp
        os.makedirs(d, exist_ok=True)
        env = dict(os.environ, OPENSSL_CONF=write_tls_material(d))
        for cls in CONTENDERS:
            c = cls()
            if only and c.name not in only:
                continue
            cd = os.path.join(d, c.name)
            os.makedirs(cd)
            for n in ("cert.pem", "key.pem", "combined.pem"):
                shutil.copy(os.path.join(d, n), cd)
            results += run_contender(c, cd, a.build, env, loads, a.seconds)
    ceiling = openssl_ceiling()
    print("ceiling    openssl speed aes-128-gcm: %.2f Gbit/s per core = %.1f %%/Gbit/s"
          % (ceiling["gbit_per_core"], ceiling["cpu_pct_per_gbit"]))
    metric = {"bulk-1": "tls_relay_cpu_pct_per_gbit_bulk", "rtp-12": "tls_relay_cpu_pct_per_gbit_rtp",
              "paced-1": "tls_relay_cpu_pct_per_gbit_bulk_paced_1stream",
              "paced-4": "tls_relay_cpu_pct_per_gbit_bulk_paced_4streams"}
    rows = [{"system": "ceiling", "metric": "tls_relay_cpu_pct_per_gbit_bulk",
             "value": round(ceiling["cpu_pct_per_gbit"], 2), "unit": "%core/Gbit/s"}]
    for r in results:
        if r["load"] in metric and r["relay_cpu_pct_per_gbit"]:
            rows.append({"system": r["system"], "metric": metric[r["load"]],
                         "value": round(r["relay_cpu_pct_per_gbit"], 2), "unit": "%core/Gbit/s"})
        if r["load"] in ("bulk-1", "bulk-4"):
            rows.append({"system": r["system"],
                         "metric": "tls_relay_gbit_%s" % ("1stream" if r["streams"] == 1
                                                          else "4streams"),
                         "value": round(r["gbit_per_s"], 3), "unit": "Gbit/s"})
    write_result(a.json, "tls_relay", rows, runs=results)


if __name__ == "__main__":
    main()
