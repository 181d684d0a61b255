// camtunnel-gateway: runs the gateway, or helps an operator with keys:
//   camtunnel-gateway [flags]                   serve
//   camtunnel-gateway new-streamer-key KEYID    print a new "<key id> <hex>" line for the keys file
//   camtunnel-gateway derive-key --streamer_keys=FILE --agent=ID --key_id=K --valid_days=N
//                                               print the agent's key reference and key
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "gateway/control_session.h"
#include "gateway/gateway_shard.h"
#include "gateway/log.h"
#include "proto/encoding.h"
#include "proto/identifiers.h"
#include "runtime/clock.h"
#include "runtime/shard.h"

ABSL_FLAG(std::string, agent_tls_listen, "", "Agent TLS listeners, comma-separated (0.0.0.0:443)");
ABSL_FLAG(std::string, agent_plain_listen, "",
          "Agent plain listeners, comma-separated (0.0.0.0:80)");
ABSL_FLAG(std::string, cert, "", "PEM certificate chain for the agent TLS listener");
ABSL_FLAG(std::string, key, "", "PEM private key for --cert");
ABSL_FLAG(bool, allow_plain_with_tls, false,
          "Accept agents on the plain listener although a certificate is configured");
ABSL_FLAG(std::string, streamer_keys, "", "Streamer keys file: lines '<key id> <64 hex>'");
ABSL_FLAG(std::string, frontend_listen, "127.0.0.1:8554,[::1]:8554",
          "Media-server frontend listeners, comma-separated");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9310", "Admin listeners (/metrics, /healthz)");
ABSL_FLAG(std::string, admin_token_file, "",
          "File holding the admin API bearer token (required when --admin_listen is not loopback)");
ABSL_FLAG(std::string, host_suffix, "localhost",
          "DNS suffix of host-form names (<agent>.<suffix>)");
ABSL_FLAG(uint64_t, handshake_timeout_ms, 5000, "Agent accept to verified HELLO");
ABSL_FLAG(uint64_t, head_timeout_ms, 5000, "Frontend connection to complete first head");
ABSL_FLAG(uint64_t, open_timeout_ms, 5000, "OPEN sent to data connection established");
ABSL_FLAG(uint32_t, heartbeat_ms, 5000, "Heartbeat interval announced to agents");
ABSL_FLAG(uint32_t, heartbeat_misses, 2, "Silent intervals before a session is dead");
ABSL_FLAG(uint32_t, reconnect_window_ms, 10000, "Reconnect window announced to agents");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
// derive-key
ABSL_FLAG(std::string, agent, "", "derive-key: agent id");
ABSL_FLAG(std::string, key_id, "", "derive-key: key id (default: the first in the file)");
ABSL_FLAG(uint32_t, valid_days, 30, "derive-key: validity of the derived key");

namespace camtunnel::gateway {
namespace {

std::vector<std::string> SplitList(const std::string& s) {
  return absl::StrSplit(s, ',', absl::SkipEmpty());
}

int NewStreamerKey(const std::string& key_id) {
  if (!proto::IsValidKeyId(key_id)) {
    std::fprintf(stderr, "invalid key id '%s': 1..32 of [A-Za-z0-9_-]\n", key_id.c_str());
    return 2;
  }
  uint8_t key[32];
  proto::RandomBytes(key);
  std::printf("%s %s\n", key_id.c_str(), proto::HexEncode(key).c_str());
  return 0;
}

int DeriveKey() {
  const std::string agent = absl::GetFlag(FLAGS_agent);
  if (!proto::IsCanonicalAgentId(agent)) {
    std::fprintf(stderr, "invalid agent id '%s': 1..63 of [a-z0-9-], no leading/trailing '-'\n",
                 agent.c_str());
    return 2;
  }
  auto keys = StreamerKeys::Load(absl::GetFlag(FLAGS_streamer_keys));
  if (!keys.ok()) {
    std::fprintf(stderr, "%s\n", std::string(keys.status().message()).c_str());
    return 2;
  }
  std::string key_id = absl::GetFlag(FLAGS_key_id);
  if (key_id.empty()) {
    key_id = keys->first_key_id();
  }
  const proto::KeyRef ref{
      key_id, runtime::WallMs() / 1000 + uint64_t{absl::GetFlag(FLAGS_valid_days)} * 86400};
  auto k = keys->AgentKey(agent, ref);
  if (!k) {
    std::fprintf(stderr, "no streamer key with id '%s'\n", key_id.c_str());
    return 2;
  }
  std::printf("key_ref=%s\nkey=%s\n", proto::FormatKeyRef(ref).c_str(),
              proto::HexEncode(*k).c_str());
  return 0;
}

int Serve() {
  const std::string level = absl::GetFlag(FLAGS_log_level);
  SetLogLevel(level == "debug"     ? LogLevel::kDebug
              : level == "warning" ? LogLevel::kWarning
              : level == "error"   ? LogLevel::kError
                                   : LogLevel::kInfo);
  GatewayConfig config;
  config.agent_tls_listen = SplitList(absl::GetFlag(FLAGS_agent_tls_listen));
  config.agent_plain_listen = SplitList(absl::GetFlag(FLAGS_agent_plain_listen));
  config.cert_file = absl::GetFlag(FLAGS_cert);
  config.key_file = absl::GetFlag(FLAGS_key);
  config.allow_plain_with_tls = absl::GetFlag(FLAGS_allow_plain_with_tls);
  config.streamer_keys_file = absl::GetFlag(FLAGS_streamer_keys);
  config.frontend_listen = SplitList(absl::GetFlag(FLAGS_frontend_listen));
  config.admin_listen = SplitList(absl::GetFlag(FLAGS_admin_listen));
  config.host_suffix = absl::GetFlag(FLAGS_host_suffix);
  if (const std::string token_file = absl::GetFlag(FLAGS_admin_token_file); !token_file.empty()) {
    std::ifstream in(token_file);
    std::getline(in, config.admin_token);
    if (config.admin_token.size() < 16) {
      std::fprintf(stderr, "admin token in %s: at least 16 characters on the first line\n",
                   token_file.c_str());
      return 2;
    }
  }
  for (const std::string& a : config.admin_listen) {
    const bool loopback = a.rfind("127.", 0) == 0 || a.rfind("[::1]:", 0) == 0;
    if (!loopback && config.admin_token.empty()) {
      std::fprintf(stderr,
                   "admin listener %s is beyond loopback: give --admin_token_file (the admin API "
                   "kicks agents and opens tunnels)\n",
                   a.c_str());
      return 2;
    }
  }
  config.handshake_timeout_ms = absl::GetFlag(FLAGS_handshake_timeout_ms);
  config.head_timeout_ms = absl::GetFlag(FLAGS_head_timeout_ms);
  config.open_timeout_ms = absl::GetFlag(FLAGS_open_timeout_ms);
  config.heartbeat_ms = absl::GetFlag(FLAGS_heartbeat_ms);
  config.heartbeat_misses = absl::GetFlag(FLAGS_heartbeat_misses);
  config.reconnect_window_ms = absl::GetFlag(FLAGS_reconnect_window_ms);
  if (config.agent_tls_listen.empty() && config.agent_plain_listen.empty()) {
    std::fprintf(stderr,
                 "no agent listener: give --agent_tls_listen and/or --agent_plain_listen\n");
    return 2;
  }
  auto keys = StreamerKeys::Load(config.streamer_keys_file);
  if (!keys.ok()) {
    std::fprintf(stderr, "streamer keys: %s\n", std::string(keys.status().message()).c_str());
    return 2;
  }

  // Signals are taken by this thread with sigwait; the shard thread never sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  runtime::Shard shard;
  GatewayShard gw(shard, config, std::move(*keys));
  // The ring is single-issuer: the shard's thread sets it up, opens the listeners and runs it.
  std::promise<absl::Status> started;
  std::thread loop([&] {
    if (int r = shard.Init({}); r < 0) {
      started.set_value(absl::InternalError(std::string("io_uring setup: ") + strerror(-r)));
      return;
    }
    absl::Status s = gw.Start();
    const bool ok = s.ok();
    started.set_value(std::move(s));
    if (ok) {
      shard.Run();
      shard.Shutdown(2000);
    }
  });
  if (absl::Status s = started.get_future().get(); !s.ok()) {
    loop.join();
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("camtunnel-gateway: ready agent_tls=%u agent_plain=%u frontend=%u admin=%u\n",
              gw.agent_tls_port(), gw.agent_plain_port(), gw.frontend_port(), gw.admin_port());
  std::fflush(stdout);
  Log(LogLevel::kInfo, "ready: agent tls port ", gw.agent_tls_port(), ", plain port ",
      gw.agent_plain_port(), ", frontend port ", gw.frontend_port(), ", admin port ",
      gw.admin_port());

  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      shard.Post([&gw] {
        if (absl::Status s = gw.Reload(); s.ok()) {
          Log(LogLevel::kInfo, "SIGHUP: reloaded certificate and streamer keys");
        } else {
          Log(LogLevel::kError, "SIGHUP: reload failed, keeping the old files: ", s.message());
        }
      });
      continue;
    }
    Log(LogLevel::kInfo, "signal ", sig, ": stopping");
    break;
  }
  shard.Post([&] {
    gw.StopAccepting();
    gw.registry().ForEachSession(
        [](std::string_view, ControlSession* s) { s->GoAway("gateway stopping", 1000); });
  });
  // Let GOAWAY frames reach the agents before the loop stops.
  usleep(300 * 1000);
  shard.Stop();
  loop.join();
  return 0;
}

}  // namespace
}  // namespace camtunnel::gateway

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("camtunnel gateway: agents dial in, media servers pull through");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() >= 2 && std::string(args[1]) == "new-streamer-key") {
    return camtunnel::gateway::NewStreamerKey(args.size() >= 3 ? args[2] : "k1");
  }
  if (args.size() >= 2 && std::string(args[1]) == "derive-key") {
    return camtunnel::gateway::DeriveKey();
  }
  if (args.size() >= 2) {
    std::fprintf(stderr, "unknown command '%s'\n", args[1]);
    return 2;
  }
  return camtunnel::gateway::Serve();
}
