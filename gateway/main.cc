// camtunnel-gateway: runs the gateway, or helps an operator with keys:
//   camtunnel-gateway [--config FILE] [flags]   serve (flags override the file)
//   camtunnel-gateway --config FILE --check_config
//                                               check the configuration, explain any error
//   camtunnel-gateway new-streamer-key KEYID    print a new "<key id> <hex>" line for the keys file
//   camtunnel-gateway derive-key --streamer_keys=FILE --agent=ID --key_id=K --valid_days=N
//                                               print the agent's key reference and key
//   camtunnel-gateway rotate-ticket-keys FILE   new current session ticket key (the old one
//                                               stays as previous); then SIGHUP the gateway
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gateway/config_check.h"
#include "gateway/config_file.h"
#include "gateway/control_session.h"
#include "gateway/gateway.h"
#include "gateway/gateway_shard.h"
#include "gateway/service_notify.h"
#include "proto/encoding.h"
#include "proto/identifiers.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "runtime/program_usage.h"
#include "runtime/shard.h"
#include "runtime/ticket_keys.h"
#include "runtime/tls_context.h"

#ifndef CAMTUNNEL_VERSION
#define CAMTUNNEL_VERSION "unknown"
#endif

ABSL_FLAG(std::string, agent_tls_listen, "", "Agent TLS listeners, comma-separated (0.0.0.0:443)");
ABSL_FLAG(std::string, agent_plain_listen, "",
          "Agent plain listeners, comma-separated (0.0.0.0:80)");
ABSL_FLAG(std::string, cert, "", "PEM certificate chain for the agent TLS listener");
ABSL_FLAG(std::string, key, "", "PEM private key for --cert");
ABSL_FLAG(bool, allow_plain_with_tls, false,
          "Accept agents on the plain listener although a certificate is configured");
ABSL_FLAG(bool, kernel_tls, true,
          "Where the kernel has kTLS, let it encrypt what the gateway sends over TLS");
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
ABSL_FLAG(std::string, ticket_keys, "", "Session ticket keys file (created when missing)");
ABSL_FLAG(uint32_t, agent_handshakes_per_second, 2000,
          "New agent connections admitted per second and shard (0: unpaced)");
ABSL_FLAG(uint32_t, agent_handshake_burst, 0, "Handshakes saved up at most (0: a tenth)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(std::string, config, "", "TOML configuration file (flags given here override it)");
ABSL_FLAG(bool, check_config, false,
          "Check the configuration (file, flags, files they name), exit");
ABSL_FLAG(std::string, frontend_allow, "",
          "Source CIDRs allowed on the frontend, comma-separated (required beyond loopback)");
ABSL_FLAG(std::string, frontend_token_file, "",
          "File holding the frontend bearer token for HTTP and CONNECT (required beyond loopback)");
ABSL_FLAG(uint64_t, drain_timeout_ms, 25000, "Drain: how long open tunnels may finish");
ABSL_FLAG(uint32_t, drain_reconnect_ms, 1000, "Drain: GOAWAY's reconnect-after hint to agents");
ABSL_FLAG(uint32_t, max_connections, 50000, "Connections per shard");
ABSL_FLAG(uint32_t, shards, 0, "Shards (threads with their own ring); 0: one per online CPU");
ABSL_FLAG(bool, takeover, false,
          "Upgrade: join the running gateway's listeners (SO_REUSEPORT) and hold media requests "
          "for agents still moving over while it drains");
ABSL_FLAG(uint64_t, takeover_hold_ms, 15000, "Takeover: how long a request waits for its agent");
ABSL_FLAG(uint64_t, takeover_window_ms, 120000, "Takeover: how long after start requests wait");
ABSL_FLAG(uint32_t, max_unauthenticated, 4096, "Agent connections not yet authenticated");
ABSL_FLAG(uint32_t, max_pending_tunnels_per_agent, 32, "Tunnels opening at once per agent");
ABSL_FLAG(uint32_t, spare_data_connections, 1,
          "Data connections an agent that opens tunnels keeps open ahead of need (0..4, 0 = off)");
ABSL_FLAG(uint32_t, spare_data_connections_max, 4,
          "Spares an agent whose opens outrun them may get (spare_data_connections..4)");
ABSL_FLAG(uint64_t, spare_idle_ms, 60000, "An unused spare data connection closes after this");
ABSL_FLAG(uint32_t, log_burst, 20, "Log lines per event per 10 s before the rest are counted");
// derive-key
ABSL_FLAG(std::string, agent, "", "derive-key: agent id");
ABSL_FLAG(std::string, key_id, "", "derive-key: key id (default: the first in the file)");
ABSL_FLAG(uint32_t, valid_days, 30, "derive-key: validity of the derived key");

namespace camtunnel::gateway {
namespace {

constexpr char kUsage[] =
    "camtunnel-gateway: agents dial in, media servers pull through.\n"
    "usage:\n"
    "  camtunnel-gateway [--config FILE] [flags]     serve (flags override the file)\n"
    "  camtunnel-gateway --config FILE --check_config\n"
    "                                                check the configuration, explain any error\n"
    "  camtunnel-gateway new-streamer-key [KEYID]    print a new '<key id> <hex>' line for the\n"
    "                                                streamer keys file (KEYID: k1)\n"
    "  camtunnel-gateway derive-key --streamer_keys=FILE --agent=ID [--key_id=K] [--valid_days=N]\n"
    "                                                print an agent's key reference and key\n"
    "  camtunnel-gateway rotate-ticket-keys FILE     new current session ticket key (the old one\n"
    "                                                stays as previous); then SIGHUP the gateway\n"
    "Flag names take '_' or '-' (--check_config, --check-config).";

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

int RotateTicketKeys(const std::string& file) {
  auto keys = runtime::TicketKeys::LoadFile(file);
  if (!keys.ok() && !absl::IsNotFound(keys.status())) {
    std::fprintf(stderr, "%s\n", std::string(keys.status().message()).c_str());
    return 2;
  }
  std::unique_ptr<runtime::TicketKeys> k =
      keys.ok() ? std::move(*keys) : runtime::TicketKeys::Generate();
  if (keys.ok()) {
    k->Rotate(runtime::TicketKey::Random());
  }
  if (absl::Status s = k->SaveFile(file); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("%s: %zu keys, the first is new; SIGHUP the gateway to use it\n", file.c_str(),
              k->snapshot()->size());
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

// Flags named on the command line (they override the configuration file). absl cannot say
// which flags were given in this release, so argv is scanned before absl parses it.
absl::flat_hash_set<std::string>& GivenFlags() {
  static absl::flat_hash_set<std::string> given;
  return given;
}

void RecordGivenFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") {
      break;
    }
    if (!a.starts_with("-")) {
      continue;
    }
    a.remove_prefix(a.starts_with("--") ? 2 : 1);
    a = a.substr(0, a.find('='));
    GivenFlags().insert(std::string(a));
    if (a.starts_with("no")) {
      GivenFlags().insert(std::string(a.substr(2)));  // --noallow_plain_with_tls
    }
  }
}

bool Given(std::string_view name) {
  return GivenFlags().contains(absl::string_view(name.data(), name.size()));
}

// A flag given on the command line replaces the file's value; list flags are comma-separated.
template <typename T>
void Override(std::string_view name, const absl::Flag<T>& flag, T* field) {
  if (Given(name)) {
    *field = absl::GetFlag(flag);
  }
}
void Override(std::string_view name, const absl::Flag<std::string>& flag,
              std::vector<std::string>* field) {
  if (Given(name)) {
    *field = SplitList(absl::GetFlag(flag));
  }
}

// Defaults, then the file (--config), then the flags given on the command line; then the secret
// files are read and every cross-option rule is checked. Run at start-up and on every SIGHUP.
absl::StatusOr<GatewayConfig> BuildConfig() {
  GatewayConfig c;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    if (absl::Status s = ApplyConfigFile(path, &c); !s.ok()) {
      return s;
    }
  }
  Override("agent_tls_listen", FLAGS_agent_tls_listen, &c.agent_tls_listen);
  Override("agent_plain_listen", FLAGS_agent_plain_listen, &c.agent_plain_listen);
  Override("cert", FLAGS_cert, &c.cert_file);
  Override("key", FLAGS_key, &c.key_file);
  Override("allow_plain_with_tls", FLAGS_allow_plain_with_tls, &c.allow_plain_with_tls);
  Override("kernel_tls", FLAGS_kernel_tls, &c.kernel_tls);
  Override("streamer_keys", FLAGS_streamer_keys, &c.streamer_keys_file);
  Override("frontend_listen", FLAGS_frontend_listen, &c.frontend_listen);
  Override("frontend_allow", FLAGS_frontend_allow, &c.frontend_allow);
  Override("frontend_token_file", FLAGS_frontend_token_file, &c.frontend_token_file);
  Override("admin_listen", FLAGS_admin_listen, &c.admin_listen);
  Override("admin_token_file", FLAGS_admin_token_file, &c.admin_token_file);
  Override("host_suffix", FLAGS_host_suffix, &c.host_suffix);
  Override("handshake_timeout_ms", FLAGS_handshake_timeout_ms, &c.handshake_timeout_ms);
  Override("head_timeout_ms", FLAGS_head_timeout_ms, &c.head_timeout_ms);
  Override("open_timeout_ms", FLAGS_open_timeout_ms, &c.open_timeout_ms);
  Override("heartbeat_ms", FLAGS_heartbeat_ms, &c.heartbeat_ms);
  Override("heartbeat_misses", FLAGS_heartbeat_misses, &c.heartbeat_misses);
  Override("reconnect_window_ms", FLAGS_reconnect_window_ms, &c.reconnect_window_ms);
  Override("ticket_keys", FLAGS_ticket_keys, &c.ticket_keys_file);
  Override("agent_handshakes_per_second", FLAGS_agent_handshakes_per_second,
           &c.agent_handshakes_per_second);
  Override("agent_handshake_burst", FLAGS_agent_handshake_burst, &c.agent_handshake_burst);
  Override("drain_timeout_ms", FLAGS_drain_timeout_ms, &c.drain_timeout_ms);
  Override("drain_reconnect_ms", FLAGS_drain_reconnect_ms, &c.drain_reconnect_ms);
  Override("max_connections", FLAGS_max_connections, &c.max_connections);
  Override("shards", FLAGS_shards, &c.shards);
  Override("takeover", FLAGS_takeover, &c.takeover);
  Override("takeover_hold_ms", FLAGS_takeover_hold_ms, &c.takeover_hold_ms);
  Override("takeover_window_ms", FLAGS_takeover_window_ms, &c.takeover_window_ms);
  Override("max_unauthenticated", FLAGS_max_unauthenticated, &c.max_unauthenticated);
  Override("max_pending_tunnels_per_agent", FLAGS_max_pending_tunnels_per_agent,
           &c.max_pending_tunnels_per_agent);
  Override("spare_data_connections", FLAGS_spare_data_connections, &c.spare_data_connections);
  Override("spare_data_connections_max", FLAGS_spare_data_connections_max,
           &c.spare_data_connections_max);
  Override("spare_idle_ms", FLAGS_spare_idle_ms, &c.spare_idle_ms);
  Override("log_level", FLAGS_log_level, &c.log_level);
  Override("log_burst", FLAGS_log_burst, &c.log_burst);
  if (absl::Status s = ResolveConfig(&c); !s.ok()) {
    return s;
  }
  return c;
}

void ApplyLogSettings(const GatewayConfig& c) {
  runtime::LogLevel level = runtime::LogLevel::kInfo;
  runtime::ParseLogLevel(c.log_level, &level);
  runtime::SetLogLevel(level);
  runtime::SetLogBurst(c.log_burst);
}

// --check_config: everything start-up would check, files included, without binding anything.
int CheckConfig() {
  auto config = BuildConfig();
  absl::Status s = config.status();
  if (s.ok() && !config->cert_file.empty()) {
    auto ctx = runtime::CreateServerContext({config->cert_file, config->key_file});
    if (!ctx.ok()) {
      s = absl::InvalidArgumentError(absl::StrCat("cert/key: ", ctx.status().message()));
    }
  }
  if (s.ok()) {
    if (auto keys = StreamerKeys::Load(config->streamer_keys_file); !keys.ok()) {
      s = absl::InvalidArgumentError(absl::StrCat("streamer_keys: ", keys.status().message()));
    }
  }
  if (!s.ok()) {
    std::fprintf(stderr, "camtunnel-gateway: configuration error: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }
  std::printf("camtunnel-gateway: configuration OK\n");
  return 0;
}

// SIGHUP: re-read the file and the secrets it names; check; then swap on every shard. A bad
// configuration changes nothing: the running one stays and the reason is logged.
void Reload(Gateway& gw) {
  NotifyReloading();
  auto fresh = BuildConfig();
  absl::Status result = fresh.status();
  if (result.ok()) {
    std::vector<std::string> restart_only;
    gw.RunOn(
        0, [&](GatewayShard& first) { restart_only = RestartOnlyChanges(first.config(), *fresh); });
    result = gw.Reload(*fresh);
    for (const std::string& key : restart_only) {
      runtime::LogEvent(runtime::LogLevel::kWarning, "config_needs_restart",
                        {runtime::Kv("key", key)});
    }
  }
  const bool ok = result.ok();
  gw.RunOn(0, [ok](GatewayShard& first) {
    (ok ? first.metrics().reloads_ok : first.metrics().reloads_failed).Add();
  });
  if (ok) {
    ApplyLogSettings(*fresh);
    runtime::LogEvent(runtime::LogLevel::kInfo, "config_reloaded");
  } else {
    runtime::LogEvent(
        runtime::LogLevel::kError, "config_reload_failed",
        {runtime::Kv("error", result.message()), runtime::Kv("kept", "running configuration")});
  }
  NotifyReady(ok ? "serving (reloaded)" : "serving (reload failed, see the log)");
}

int Serve() {
  auto built = BuildConfig();
  if (!built.ok()) {
    std::fprintf(stderr, "camtunnel-gateway: configuration error: %s\n",
                 std::string(built.status().message()).c_str());
    return 2;
  }
  GatewayConfig config = std::move(*built);
  ApplyLogSettings(config);
  auto keys = StreamerKeys::Load(config.streamer_keys_file);
  if (!keys.ok()) {
    std::fprintf(stderr, "streamer keys: %s\n", std::string(keys.status().message()).c_str());
    return 2;
  }

  // Signals are taken by this thread with sigwait; the shard threads (started below, which
  // inherit this mask) never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const unsigned shards = ShardCount(config.shards);
  Gateway gw(config, std::move(*keys));
  if (absl::Status s = gw.Start(shards); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  // Scripts and tests wait for this exact line; the shard count is in the `ready` log event.
  std::printf("camtunnel-gateway: ready agent_tls=%u agent_plain=%u frontend=%u admin=%u\n",
              gw.agent_tls_port(), gw.agent_plain_port(), gw.frontend_port(), gw.admin_port());
  std::fflush(stdout);
  runtime::LogEvent(
      runtime::LogLevel::kInfo, "ready",
      {runtime::Kv("agent_tls_port", gw.agent_tls_port()),
       runtime::Kv("agent_plain_port", gw.agent_plain_port()),
       runtime::Kv("frontend_port", gw.frontend_port()), runtime::Kv("admin_port", gw.admin_port()),
       runtime::Kv("shards", shards), runtime::Kv("version", CAMTUNNEL_VERSION)});
  NotifyReady("serving");

  std::atomic<bool> drained{false};
  bool stopping = false;
  for (;;) {
    int sig = 0;
    if (stopping) {
      // Draining: wake up now and then to see whether every shard has finished.
      timespec wait{0, 100 * 1000 * 1000};
      sig = sigtimedwait(&signals, nullptr, &wait);
      if (drained.load()) {
        break;
      }
      if (sig < 0) {
        continue;
      }
    } else if (sigwait(&signals, &sig) != 0) {
      continue;
    }
    if (sig == SIGHUP) {
      if (stopping) {
        runtime::LogEvent(runtime::LogLevel::kWarning, "reload_ignored",
                          {runtime::Kv("reason", "stopping")});
      } else {
        Reload(gw);
      }
      continue;
    }
    if (stopping) {
      // A second SIGTERM/SIGINT: the operator does not want to wait for the drain.
      runtime::LogEvent(runtime::LogLevel::kWarning, "stop_now", {runtime::Kv("signal", sig)});
      break;
    }
    stopping = true;
    runtime::LogEvent(
        runtime::LogLevel::kInfo, "stopping",
        {runtime::Kv("signal", sig), runtime::Kv("drain_timeout_ms", config.drain_timeout_ms)});
    NotifyStopping("draining");
    // GOAWAY frames go out with the drain; once every shard is drained, Stop closes what is
    // left after flushing (each shard's Shutdown).
    gw.Drain([&drained] { drained.store(true); });
  }
  gw.Stop(2000);
  runtime::LogEvent(runtime::LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace
}  // namespace camtunnel::gateway

int main(int argc, char** argv) {
  // Flag names take '-' or '_' (--check-config, --check_config); absl knows only '_'.
  for (int i = 1; i < argc && std::string_view(argv[i]) != "--"; ++i) {
    if (argv[i][0] == '-' && argv[i][1] == '-') {
      for (char* c = argv[i] + 2; *c != '\0' && *c != '='; ++c) {
        *c = *c == '-' ? '_' : *c;
      }
    }
  }
  camtunnel::gateway::RecordGivenFlags(argc, argv);
  std::vector<char*> args = camtunnel::runtime::ParseProgramCommandLine(
      argc, argv, {.message = camtunnel::gateway::kUsage, .flags_folder = "gateway"});
  if (args.size() >= 2 && std::string(args[1]) == "new-streamer-key") {
    return camtunnel::gateway::NewStreamerKey(args.size() >= 3 ? args[2] : "k1");
  }
  if (args.size() >= 3 && std::string(args[1]) == "rotate-ticket-keys") {
    return camtunnel::gateway::RotateTicketKeys(args[2]);
  }
  if (args.size() >= 2 && std::string(args[1]) == "derive-key") {
    return camtunnel::gateway::DeriveKey();
  }
  if (args.size() >= 2) {
    std::fprintf(stderr, "unknown command '%s'\n", args[1]);
    return 2;
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    return camtunnel::gateway::CheckConfig();
  }
  return camtunnel::gateway::Serve();
}
