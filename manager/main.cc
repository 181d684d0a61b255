// camtunnel-manager: the activation server and the managing server, one binary, one shard.
//   camtunnel-manager --cert=C --key=K --store=manager.db --factory_master_file=F
//       --operators=acme --manager_url=https://mgr:7443 --streamers=streamers.txt
//       [--plain_listen=0.0.0.0:7080 --manager_url=http://mgr:7080]   plain manager links
//   split roles (PROTOCOL.md section 10.4): the activation server keeps no agent secret
//     camtunnel-manager --role=managing --handover_key_file=H ...   (no --factory_master_file)
//     camtunnel-manager --role=activation --handover_key_file=H
//         --handover_url=http://mgr-admin:9320 --factory_master_file=F --manager_url=... ...
//   camtunnel-manager new-factory-master            print 64 hex characters (a new master key)
//   camtunnel-manager factory-secret --factory_master_file=F --serial=S
//                                                   the device's factory secret, for provisioning
//   camtunnel-manager new-secrets-key --secrets_key_file=F [--key_id=N]
//   camtunnel-manager reseal --store=DB --secrets_key_file=F
//   camtunnel-manager migrate --from=DB --to=DB [--secrets_key_file=F] [--force]
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "manager/activation.h"
#include "manager/command_listener.h"
#include "manager/config_digest.h"
#include "manager/handover_enroller.h"
#include "manager/handover_service.h"
#include "manager/manager_server.h"
#include "manager/secret_reseal.h"
#include "manager/secret_sealer.h"
#include "manager/store.h"
#include "manager/store_migration.h"
#include "manager/streamer_pool.h"
#include "proto/control_link.h"
#include "proto/encoding.h"
#include "proto/handover.h"
#include "proto/manager_link.h"
#include "runtime/clock.h"
#include "runtime/listener.h"
#include "runtime/log.h"
#include "runtime/program_usage.h"
#include "runtime/read_file.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7443",
          "TLS listeners for activation and agent manager links, comma-separated");
ABSL_FLAG(std::string, plain_listen, "",
          "Plain TCP listeners for agent manager links only (frames MACed, not encrypted; "
          "activation stays on --listen), comma-separated; none by default");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9320", "Admin API listeners, comma-separated");
ABSL_FLAG(std::string, admin_token_file, "",
          "File holding the admin bearer token (required when --admin_listen is not loopback)");
ABSL_FLAG(std::string, cert, "", "PEM certificate chain of the TLS listener");
ABSL_FLAG(std::string, key, "", "PEM private key for --cert");
ABSL_FLAG(std::string, store, "camtunnel-manager.db",
          "State database: a SQLite file (PATH or sqlite:PATH), or PostgreSQL shared by several "
          "managers (a postgresql:// URI or a libpq key=value connection string)");
ABSL_FLAG(std::string, state, "", "Deprecated name of --store (a SQLite file)");
ABSL_FLAG(uint32_t, store_connections, 4,
          "PostgreSQL connections (store worker threads); SQLite always uses one");
ABSL_FLAG(std::string, factory_master_file, "",
          "File holding the factory master key (64 hex): derives each device's factory secret");
ABSL_FLAG(std::string, operators, "", "Accepted operator ids / claim tokens, comma-separated");
ABSL_FLAG(std::string, operators_file, "",
          "More accepted operator ids, one per line (# comments); re-read on SIGHUP");
ABSL_FLAG(std::string, manager_url, "",
          "URL handed to activated agents: https://host:port (TLS link), or http://host:port "
          "(plain link; needs --plain_listen)");
ABSL_FLAG(std::string, streamers, "",
          "Streamers file: lines 'URL KEYID KEYSFILE [ADMIN_URL [TOKEN_FILE]] [frontend=URL]' "
          "('#' comments)");
ABSL_FLAG(uint64_t, key_validity_s, uint64_t{7} * 24 * 3600,
          "Validity of the derived gateway keys");
ABSL_FLAG(uint32_t, heartbeat_ms, 5000, "Heartbeat interval announced on manager links");
ABSL_FLAG(std::string, manager_urls, "",
          "Every manager of the deployment (URLs agents dial), comma-separated: handed out at "
          "activation and announced in WELCOME; agents spread over them (PROTOCOL.md 10.5)");
ABSL_FLAG(std::string, manager_id, "",
          "This manager's name in the link registry, unique among the managers sharing a "
          "database (default: host name and first --listen address)");
ABSL_FLAG(uint64_t, command_ttl_ms, 60000,
          "An operator's command not acknowledged by the agent within this expires");
ABSL_FLAG(uint32_t, reconnect_window_ms, 10000,
          "Announced in WELCOME: after losing this manager an agent waits a random delay below it");
ABSL_FLAG(uint64_t, max_links, 20000,
          "Manager links held at most; past it upgrades are answered 503 (agents try another "
          "manager)");
ABSL_FLAG(uint64_t, handshake_timeout_ms, 5000, "Accept to verified HELLO / complete request");
ABSL_FLAG(uint32_t, handshakes_per_second, 2000,
          "New TLS connections admitted per second before any TLS work (0: unpaced); the rest "
          "wait in the kernel's backlog");
ABSL_FLAG(uint32_t, activation_burst, 5, "Activation attempts a source may make at once");
ABSL_FLAG(uint64_t, activation_refill_ms, 10000, "One more activation attempt per source every");
ABSL_FLAG(uint64_t, health_interval_ms, 5000, "GET /readyz of each Streamer every");
ABSL_FLAG(uint64_t, leader_lease_ms, 10000,
          "Lifetime of the leader lease (health checks, retention); a stopped leader is replaced "
          "within about this long");
ABSL_FLAG(uint32_t, history_retention_days, 90,
          "Activation attempts, audit entries and finished commands older than this are deleted "
          "(0: kept forever)");
ABSL_FLAG(std::string, serial, "", "factory-secret: the device serial");
ABSL_FLAG(std::string, role, "all",
          "all (activation + managing, one database), activation (admits cameras, hands each "
          "over to the managing server; keeps no agent secret) or managing");
ABSL_FLAG(std::string, handover_key_file, "",
          "File holding the hand-over key (64 hex) shared by split activation and managing "
          "servers");
ABSL_FLAG(std::string, handover_url, "",
          "--role=activation: the managing server's admin listener, http://ip:port");
ABSL_FLAG(uint64_t, handover_timeout_ms, 3000, "--role=activation: hand-over call timeout");
ABSL_FLAG(std::string, secrets_key_file, "",
          "File of the keys that seal agents' secrets in the store: lines 'KEYID HEX64', the "
          "last one seals, any opens; mode 0600 (new-secrets-key makes one). Without it, "
          "secrets are stored in the clear");
ABSL_FLAG(int32_t, key_id, -1,
          "new-secrets-key: the new key's id, 0..255 (default: one above the file's highest)");
ABSL_FLAG(std::string, from, "", "migrate: the store to copy from (a --store spec)");
ABSL_FLAG(std::string, to, "", "migrate: the store to copy into (a --store spec)");
ABSL_FLAG(bool, force, false,
          "migrate: copy into a destination that already holds agents (resumes a copy cut "
          "short)");

namespace {

using namespace camtunnel;

constexpr char kUsage[] =
    "camtunnel-manager: the activation server and the managing server (docs/manager.md).\n"
    "usage:\n"
    "  camtunnel-manager --cert=C --key=K --store=DB --factory_master_file=F --operators=IDS\n"
    "      --manager_url=https://HOST:PORT --streamers=FILE [flags]\n"
    "                                          serve activation and manager links (--role=all)\n"
    "  camtunnel-manager --role=managing --handover_key_file=H [flags]\n"
    "  camtunnel-manager --role=activation --handover_key_file=H --handover_url=URL\n"
    "      --factory_master_file=F --manager_url=URL [flags]\n"
    "                                          split roles: the activation server keeps no\n"
    "                                          agent secret\n"
    "  camtunnel-manager new-factory-master    print a new factory master key (64 hex)\n"
    "  camtunnel-manager factory-secret --factory_master_file=F --serial=S\n"
    "                                          print a device's factory secret, for provisioning\n"
    "  camtunnel-manager new-secrets-key --secrets_key_file=F [--key_id=N]\n"
    "                                          add a key sealing agents' secrets at rest (the\n"
    "                                          file is created 0600); managers seal with it\n"
    "                                          once restarted\n"
    "  camtunnel-manager reseal --store=DB --secrets_key_file=F\n"
    "                                          rewrite every agent's secret under the newest key\n"
    "  camtunnel-manager migrate --from=DB --to=DB [--secrets_key_file=F] [--force]\n"
    "                                          copy a whole store into another (SQLite to\n"
    "                                          PostgreSQL); refuses a destination with agents\n"
    "                                          unless --force";

// The file's first word (a key or token file may end in a newline or carry a comment after it);
// empty when the file cannot be read or holds none.
std::string FirstWord(const std::string& path) {
  auto text = runtime::ReadWholeFile(path);
  if (!text.ok()) {
    return {};
  }
  std::vector<std::string> words =
      absl::StrSplit(*text, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty());
  return words.empty() ? std::string() : std::move(words[0]);
}

absl::StatusOr<std::vector<uint8_t>> ReadHexKey(const std::string& path, const char* what) {
  std::string text = FirstWord(path);
  if (text.empty()) {
    return absl::NotFoundError(std::string("cannot read ") + what + " " + path);
  }
  auto key = proto::HexDecode(text);
  OPENSSL_cleanse(text.data(), text.size());
  if (!key || key->size() != 32) {
    return absl::InvalidArgumentError(std::string(what) + " " + path +
                                      ": expected 64 hex characters");
  }
  return *key;
}

// A start-up refusal: the flag at fault ("--role") and why, as one error event (the exit code
// follows).
void ConfigError(std::string_view flag, absl::string_view error,
                 std::optional<runtime::LogField> extra = std::nullopt) {
  if (extra) {
    runtime::LogEvent(
        runtime::LogLevel::kError, "config_error",
        {runtime::Kv("option", "--" + std::string(flag)), runtime::Kv("error", error), *extra});
  } else {
    runtime::LogEvent(
        runtime::LogLevel::kError, "config_error",
        {runtime::Kv("option", "--" + std::string(flag)), runtime::Kv("error", error)});
  }
}

std::vector<std::string> SplitList(const std::string& text) {
  return absl::StrSplit(text, ',', absl::SkipEmpty());
}

bool IsLoopback(const std::string& address) {
  return address.starts_with("127.") || address.starts_with("[::1]");
}

absl::StatusOr<std::vector<manager::StreamerConfig>> LoadStreamers(const std::string& path) {
  std::vector<manager::StreamerConfig> out;
  if (path.empty()) {
    return out;
  }
  auto text = runtime::ReadWholeFile(path);
  if (!text.ok()) {
    return absl::NotFoundError("cannot read --streamers " + path);
  }
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    std::vector<std::string> parts =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r\f\v"), absl::SkipEmpty());
    if (parts.empty() || parts[0].starts_with('#')) {
      continue;
    }
    std::string spec;
    for (size_t i = 0; i < parts.size(); ++i) {
      spec += (i ? "," : "") + parts[i];
    }
    auto s = manager::ParseStreamerSpec(spec);
    if (!s.ok()) {
      return s.status();
    }
    out.push_back(std::move(*s));
  }
  return out;
}

int FactorySecretCommand() {
  auto master = ReadHexKey(absl::GetFlag(FLAGS_factory_master_file), "factory master key");
  if (!master.ok()) {
    std::fprintf(stderr, "camtunnel-manager: %s\n", std::string(master.status().message()).c_str());
    return 2;
  }
  const std::string serial = absl::GetFlag(FLAGS_serial);
  if (!proto::IsCanonicalAgentId(serial)) {
    std::fprintf(stderr, "camtunnel-manager: --serial must be 1..63 of [a-z0-9-]\n");
    return 2;
  }
  std::printf("%s\n", proto::HexEncode(proto::FactorySecret(*master, serial)).c_str());
  OPENSSL_cleanse(master->data(), master->size());
  return 0;
}

// --secrets_key_file's sealer, or nullopt without the flag; an error for a file that cannot be
// used (loose mode, missing, malformed).
absl::StatusOr<std::optional<manager::SecretSealer>> LoadSealer() {
  const std::string file = absl::GetFlag(FLAGS_secrets_key_file);
  if (file.empty()) {
    return std::optional<manager::SecretSealer>();
  }
  auto sealer = manager::SecretSealer::FromKeyFile(file);
  if (!sealer.ok()) {
    return sealer.status();
  }
  return std::optional<manager::SecretSealer>(std::move(*sealer));
}

// reseal and migrate read a store that must exist: opening a mistyped SQLite path would create
// an empty database and report nothing to do.
absl::Status RequireExistingStore(const std::string& flag, const std::string& spec) {
  if (manager::IsPostgresSpec(spec)) {
    return absl::OkStatus();
  }
  const std::string path = spec.starts_with("sqlite:") ? spec.substr(7) : spec;
  if (access(path.c_str(), F_OK) != 0) {
    return absl::NotFoundError("--" + flag + ": no SQLite store at " + path);
  }
  return absl::OkStatus();
}

int CommandError(const absl::Status& status) {
  std::fprintf(stderr, "camtunnel-manager: %s\n", std::string(status.message()).c_str());
  return absl::IsInvalidArgument(status) || absl::IsPermissionDenied(status) ||
                 absl::IsNotFound(status) || absl::IsFailedPrecondition(status)
             ? 2
             : 1;
}

int NewSecretsKeyCommand() {
  const std::string file = absl::GetFlag(FLAGS_secrets_key_file);
  if (file.empty()) {
    std::fprintf(stderr, "camtunnel-manager: new-secrets-key needs --secrets_key_file\n");
    return 2;
  }
  const int32_t requested = absl::GetFlag(FLAGS_key_id);
  auto id = manager::AppendNewKey(file, requested < 0 ? std::nullopt : std::optional(requested));
  if (!id.ok()) {
    return CommandError(id.status());
  }
  std::printf("camtunnel-manager: key %d added to %s; managers seal with it once restarted\n",
              static_cast<int>(*id), file.c_str());
  return 0;
}

int ResealCommand() {
  if (absl::GetFlag(FLAGS_secrets_key_file).empty()) {
    std::fprintf(stderr, "camtunnel-manager: reseal needs --secrets_key_file\n");
    return 2;
  }
  const std::string spec = absl::GetFlag(FLAGS_store);
  if (absl::Status st = RequireExistingStore("store", spec); !st.ok()) {
    return CommandError(st);
  }
  auto sealer = LoadSealer();
  if (!sealer.ok()) {
    return CommandError(sealer.status());
  }
  auto store = manager::OpenStoreConnection(spec, &**sealer);
  if (!store.ok()) {
    return CommandError(store.status());
  }
  auto counts = manager::ResealSecrets(**store, **sealer);
  if (!counts.ok()) {
    return CommandError(counts.status());
  }
  std::printf(
      "camtunnel-manager: resealed %llu agent secrets under key %d (%llu were stored in "
      "the clear, %llu under an older key)\n",
      static_cast<unsigned long long>(counts->resealed),
      static_cast<int>((*sealer)->sealing_key_id()), static_cast<unsigned long long>(counts->clear),
      static_cast<unsigned long long>(counts->older_key));
  return 0;
}

int MigrateCommand() {
  const std::string from = absl::GetFlag(FLAGS_from);
  const std::string to = absl::GetFlag(FLAGS_to);
  if (from.empty() || to.empty()) {
    std::fprintf(stderr, "camtunnel-manager: migrate needs --from and --to\n");
    return 2;
  }
  if (from == to) {
    std::fprintf(stderr, "camtunnel-manager: --from and --to name the same store\n");
    return 2;
  }
  if (absl::Status st = RequireExistingStore("from", from); !st.ok()) {
    return CommandError(st);
  }
  auto sealer = LoadSealer();
  if (!sealer.ok()) {
    return CommandError(sealer.status());
  }
  const manager::SecretSealer* seal = *sealer ? &**sealer : nullptr;
  if (seal == nullptr) {
    std::fprintf(stderr,
                 "camtunnel-manager: warning: no --secrets_key_file: secrets are copied in the "
                 "clear, and sealed ones cannot be read\n");
  }
  auto source = manager::OpenStoreConnection(from, seal);
  if (!source.ok()) {
    return CommandError(source.status());
  }
  auto destination = manager::OpenStoreConnection(to, seal);
  if (!destination.ok()) {
    return CommandError(destination.status());
  }
  auto counts = manager::MigrateStore(
      **source, **destination,
      {.force = absl::GetFlag(FLAGS_force), .now_ms = static_cast<int64_t>(runtime::WallMs())});
  if (!counts.ok()) {
    return CommandError(counts.status());
  }
  std::printf(
      "agents %llu\nclaims %llu\nactivations %llu (%llu already there)\n"
      "audit %llu (%llu already there)\ncommand ids above %lld\n",
      static_cast<unsigned long long>(counts->agents),
      static_cast<unsigned long long>(counts->claims),
      static_cast<unsigned long long>(counts->activations),
      static_cast<unsigned long long>(counts->activations_skipped),
      static_cast<unsigned long long>(counts->audit),
      static_cast<unsigned long long>(counts->audit_skipped),
      static_cast<long long>(counts->command_id_floor));
  return 0;
}

// The operators: --operators and the lines of --operators_file (re-read on SIGHUP).
absl::StatusOr<std::set<std::string>> LoadOperators() {
  std::set<std::string> out;
  for (const std::string& op : SplitList(absl::GetFlag(FLAGS_operators))) {
    out.insert(op);
  }
  if (const std::string path = absl::GetFlag(FLAGS_operators_file); !path.empty()) {
    auto text = runtime::ReadWholeFile(path);
    if (!text.ok()) {
      return absl::NotFoundError("cannot read --operators_file " + path);
    }
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty() && line.front() != '#') {
        out.insert(std::string(line));
      }
    }
  }
  return out;
}

// SIGHUP: the files are read again and checked; only a complete, valid set reaches the server
// (on its thread). A bad file is logged and changes nothing.
void Reload(runtime::Shard& shard, manager::ManagerServer& server,
            const std::vector<std::string>& manager_urls) {
  auto streamers = LoadStreamers(absl::GetFlag(FLAGS_streamers));
  auto operators = LoadOperators();
  if (!streamers.ok() || !operators.ok()) {
    runtime::LogEvent(runtime::LogLevel::kError, "reload_failed",
                      {runtime::Kv("error", !streamers.ok() ? streamers.status().message()
                                                            : operators.status().message())});
    return;
  }
  manager::ReloadSet set{.streamers = std::move(*streamers), .operators = std::move(*operators)};
  set.config_digest = manager::ConfigDigest(set.streamers, set.operators, manager_urls,
                                            absl::GetFlag(FLAGS_key_validity_s));
  shard.Post([&server, set = std::move(set)]() mutable { (void)server.Reload(std::move(set)); });
}

int Serve() {
  manager::ManagerConfig config;
  const std::string role = absl::GetFlag(FLAGS_role);
  if (role == "all") {
    config.role = manager::ManagerRole::kAll;
  } else if (role == "activation") {
    config.role = manager::ManagerRole::kActivation;
  } else if (role == "managing") {
    config.role = manager::ManagerRole::kManaging;
  } else {
    ConfigError("role", "must be all, activation or managing", runtime::Kv("value", role));
    return 2;
  }
  const bool activates = config.role != manager::ManagerRole::kManaging;
  std::optional<proto::HandoverKeys> handover_keys;
  if (const std::string file = absl::GetFlag(FLAGS_handover_key_file); !file.empty()) {
    auto key = ReadHexKey(file, "hand-over key");
    if (!key.ok()) {
      ConfigError("handover_key_file", key.status().message());
      return 2;
    }
    handover_keys = proto::DeriveHandoverKeys(*key);
    OPENSSL_cleanse(key->data(), key->size());
  } else if (config.role != manager::ManagerRole::kAll) {
    ConfigError("handover_key_file", "required by this role", runtime::Kv("role", role));
    return 2;
  }
  std::optional<manager::AdminTarget> managing;
  if (config.role == manager::ManagerRole::kActivation) {
    managing = manager::ParseAdminUrl(absl::GetFlag(FLAGS_handover_url));
    if (!managing) {
      ConfigError("handover_url",
                  "--role=activation needs http://ip:port (the managing server's admin listener)");
      return 2;
    }
  }
  config.listen = SplitList(absl::GetFlag(FLAGS_listen));
  config.plain_listen = SplitList(absl::GetFlag(FLAGS_plain_listen));
  config.admin_listen = SplitList(absl::GetFlag(FLAGS_admin_listen));
  config.tls = {absl::GetFlag(FLAGS_cert), absl::GetFlag(FLAGS_key)};
  config.heartbeat_ms = absl::GetFlag(FLAGS_heartbeat_ms);
  config.reconnect_window_ms = absl::GetFlag(FLAGS_reconnect_window_ms);
  config.command_ttl_ms = std::max<uint64_t>(1000, absl::GetFlag(FLAGS_command_ttl_ms));
  config.manager_id = absl::GetFlag(FLAGS_manager_id);
  if (config.manager_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    config.manager_id =
        std::string(host) + "/" + (config.listen.empty() ? std::string() : config.listen.front());
  }
  config.max_links = absl::GetFlag(FLAGS_max_links);
  config.manager_urls = SplitList(absl::GetFlag(FLAGS_manager_urls));
  for (const std::string& url : config.manager_urls) {
    if (!proto::IsValidStreamerUrl(url)) {
      ConfigError("manager_urls", "each must be https://host[:port] or http://host[:port]",
                  runtime::Kv("value", url));
      return 2;
    }
  }
  if (config.manager_urls.size() > proto::kMaxManagers) {
    ConfigError("manager_urls", "at most 16 managers");
    return 2;
  }
  config.handshake_timeout_ms = absl::GetFlag(FLAGS_handshake_timeout_ms);
  config.handshakes_per_second = absl::GetFlag(FLAGS_handshakes_per_second);
  config.health_interval_ms = std::max<uint64_t>(100, absl::GetFlag(FLAGS_health_interval_ms));
  config.leader_lease_ms = std::max<uint64_t>(300, absl::GetFlag(FLAGS_leader_lease_ms));
  config.history_retention_ms =
      uint64_t{absl::GetFlag(FLAGS_history_retention_days)} * 24 * 3600 * 1000;
  if (const std::string token_file = absl::GetFlag(FLAGS_admin_token_file); !token_file.empty()) {
    config.admin_token = FirstWord(token_file);
    if (config.admin_token.size() < 16) {
      ConfigError("admin_token_file", "need a token of 16+ chars");
      return 2;
    }
  }
  for (const std::string& a : config.admin_listen) {
    if (!IsLoopback(a) && config.admin_token.empty()) {
      ConfigError("admin_token_file", "required: --admin_listen is not loopback",
                  runtime::Kv("admin_listen", a));
      return 2;
    }
  }
  if (config.tls.cert_file.empty() || config.tls.key_file.empty()) {
    ConfigError("cert", "--cert and --key are required (activation is HTTPS only)");
    return 2;
  }
  manager::ActivationOptions activation_options;
  if (activates) {
    auto master = ReadHexKey(absl::GetFlag(FLAGS_factory_master_file), "factory master key");
    if (!master.ok()) {
      ConfigError("factory_master_file", master.status().message());
      return 2;
    }
    activation_options.factory_master = std::move(*master);
  }
  auto operators = LoadOperators();
  if (!operators.ok()) {
    ConfigError("operators_file", operators.status().message());
    return 2;
  }
  activation_options.operators = std::move(*operators);
  activation_options.manager_url = absl::GetFlag(FLAGS_manager_url);
  activation_options.manager_urls = config.manager_urls;
  if (activates && !proto::IsValidStreamerUrl(activation_options.manager_url)) {
    ConfigError("manager_url", "must be https://host[:port] or http://host[:port]",
                runtime::Kv("value", activation_options.manager_url));
    return 2;
  }
  // The scheme is the manager's choice, handed out only inside TLS (activation): an agent never
  // goes plain by itself. A plain URL without a plain listener would strand every agent.
  if (config.role == manager::ManagerRole::kAll &&
      activation_options.manager_url.starts_with("http://") && config.plain_listen.empty()) {
    ConfigError("manager_url", "a plain URL needs --plain_listen",
                runtime::Kv("value", activation_options.manager_url));
    return 2;
  }
  for (const std::string& a : config.plain_listen) {
    runtime::LogEvent(runtime::LogLevel::kWarning, "plain_links_enabled",
                      {runtime::Kv("listen", a),
                       runtime::Kv("note",
                                   "frames are MACed and gateway keys sealed, but STATUS and "
                                   "commands travel unencrypted")});
  }
  activation_options.rate_burst = absl::GetFlag(FLAGS_activation_burst);
  activation_options.rate_refill_ms =
      static_cast<int64_t>(std::max<uint64_t>(1, absl::GetFlag(FLAGS_activation_refill_ms)));
  auto streamers = LoadStreamers(absl::GetFlag(FLAGS_streamers));
  if (!streamers.ok()) {
    ConfigError("streamers", streamers.status().message());
    return 2;
  }
  std::string store_spec = absl::GetFlag(FLAGS_store);
  if (!absl::GetFlag(FLAGS_state).empty()) {
    store_spec = absl::GetFlag(FLAGS_state);
    runtime::LogEvent(runtime::LogLevel::kWarning, "deprecated_flag",
                      {runtime::Kv("flag", "--state"), runtime::Kv("use", "--store")});
  }
  config.config_digest =
      manager::ConfigDigest(*streamers, activation_options.operators, config.manager_urls,
                            absl::GetFlag(FLAGS_key_validity_s));
  manager::StreamerPool pool(std::move(*streamers), absl::GetFlag(FLAGS_key_validity_s));

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto sealer = LoadSealer();
  if (!sealer.ok()) {
    ConfigError("secrets_key_file", sealer.status().message());
    return 2;
  }
  if (!*sealer) {
    runtime::LogEvent(runtime::LogLevel::kWarning, "secrets_stored_clear",
                      {runtime::Kv("note",
                                   "no --secrets_key_file: agents' secrets are stored in the "
                                   "clear, so a copy of the database is a copy of the fleet's "
                                   "credentials (docs/manager.md, Secrets at rest)")});
  }

  runtime::Shard shard;
  auto store = manager::Store::Open(shard, store_spec, *sealer ? &**sealer : nullptr,
                                    absl::GetFlag(FLAGS_store_connections));
  if (!store.ok()) {
    // Never the connection string itself: it may hold a password.
    runtime::LogEvent(
        runtime::LogLevel::kError, "store_open_failed",
        {runtime::Kv("backend", manager::IsPostgresSpec(store_spec) ? "postgresql" : "sqlite"),
         runtime::Kv("error", store.status().message())});
    return 1;
  }
  // Split roles: the activation server enrols through the managing server; otherwise both
  // share this database.
  std::unique_ptr<manager::Enroller> enroller;
  const std::map<std::string, uint64_t>* handover_calls = nullptr;
  if (managing) {
    auto remote = std::make_unique<manager::HandoverEnroller>(
        shard, *managing, *handover_keys, absl::GetFlag(FLAGS_handover_timeout_ms));
    handover_calls = &remote->counts();
    enroller = std::move(remote);
  } else {
    enroller = std::make_unique<manager::LocalEnroller>(**store);
  }
  manager::ActivationService activation(**store, *enroller, std::move(activation_options));
  std::optional<manager::HandoverService> handover;
  manager::ManagerServer server(shard, config, **store, activation, pool);
  if (handover_keys && config.role != manager::ManagerRole::kActivation) {
    handover.emplace(**store, *handover_keys);
    server.AttachHandoverService(&*handover);
  }
  server.AttachHandoverCalls(handover_calls);
  // Several managers on one PostgreSQL database: a command another manager records reaches the
  // agents linked here at once, not at the next sweep. Started on the shard's thread once the
  // server runs (its handlers are posted there); destroyed after the shard stopped.
  std::unique_ptr<manager::CommandListener> command_listener;
  auto listen_for_commands = [&]() -> absl::Status {
    if (!manager::IsPostgresSpec(store_spec) || config.role == manager::ManagerRole::kActivation) {
      return absl::OkStatus();
    }
    auto listener = manager::CommandListener::Start(
        shard, store_spec,
        {.command = [&server](int64_t id) { server.commands().Notified(id); },
         .listening = [&server] { server.commands().Rescan(); }});
    if (!listener.ok()) {
      return listener.status();
    }
    command_listener = std::move(*listener);
    server.AttachCommandListener(command_listener.get());
    return absl::OkStatus();
  };
  std::promise<absl::Status> started;
  std::thread loop([&] {
    if (int r = shard.Init({.buffer_count = 256}); r < 0) {
      // ErrnoToStatus names the error with strerror_r: strerror is not thread-safe.
      started.set_value(absl::ErrnoToStatus(-r, "io_uring setup"));
      return;
    }
    absl::Status s = server.Start();
    if (s.ok()) {
      s = listen_for_commands();
    }
    const bool ok = s.ok();
    started.set_value(std::move(s));
    if (ok) {
      shard.Run();
      shard.Shutdown(2000);
    }
  });
  if (absl::Status s = started.get_future().get(); !s.ok()) {
    loop.join();
    runtime::LogEvent(runtime::LogLevel::kError, "start_failed",
                      {runtime::Kv("error", s.message())});
    return 1;
  }
  std::printf("camtunnel-manager: ready port=%u admin=%u streamers=%zu plain=%u role=%s\n",
              server.port(), server.admin_port(), pool.size(), server.plain_port(), role.c_str());
  std::fflush(stdout);
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    Reload(shard, server, config.manager_urls);
  }
  runtime::LogEvent(runtime::LogLevel::kInfo, "stopping", {runtime::Kv("signal", sig)});
  shard.Post([&server = server, &shard] {
    server.StopAccepting();
    shard.Stop();
  });
  loop.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args =
      runtime::ParseProgramCommandLine(argc, argv, {.message = kUsage, .flags_folder = "manager"});
  if (args.size() >= 2 && std::string(args[1]) == "new-factory-master") {
    uint8_t key[32];
    proto::RandomBytes(key);
    std::printf("%s\n", proto::HexEncode(key).c_str());
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
  }
  if (args.size() >= 2 && std::string(args[1]) == "factory-secret") {
    return FactorySecretCommand();
  }
  if (args.size() >= 2 && std::string(args[1]) == "new-secrets-key") {
    return NewSecretsKeyCommand();
  }
  if (args.size() >= 2 && std::string(args[1]) == "reseal") {
    return ResealCommand();
  }
  if (args.size() >= 2 && std::string(args[1]) == "migrate") {
    return MigrateCommand();
  }
  if (args.size() >= 2) {
    std::fprintf(stderr, "camtunnel-manager: unknown command %s\n", args[1]);
    return 2;
  }
  return Serve();
}
