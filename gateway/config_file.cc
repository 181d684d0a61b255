#include "gateway/config_file.h"

#include <toml++/toml.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runtime/read_file.h"

namespace camtunnel::gateway {
namespace {

// The file is read at start-up and on SIGHUP only, so toml++'s exceptions (its Debian build's
// ABI) stay confined to this file and never reach the data path.
class Reader {
 public:
  Reader(std::string_view source, GatewayConfig* config) : source_(source), config_(config) {}

  absl::Status Apply(const toml::table& table) {
    for (const auto& [key, node] : table) {
      const std::string name(key.str());
      const Setter* setter = Find(name);
      if (setter == nullptr) {
        return Error(node, name, "unknown key (see docs/configuration.md for the keys)");
      }
      if (absl::Status s = (*setter)(node, name); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

 private:
  using Setter = std::function<absl::Status(const toml::node&, const std::string&)>;

  absl::Status Error(const toml::node& node, std::string_view key, std::string_view what) const {
    const toml::source_position at = node.source().begin;
    return absl::InvalidArgumentError(
        absl::StrCat(absl::string_view(source_.data(), source_.size()), ":", at.line, ":",
                     at.column, ": ", absl::string_view(key.data(), key.size()), ": ",
                     absl::string_view(what.data(), what.size())));
  }

  Setter String(std::string GatewayConfig::*field) {
    return [this, field](const toml::node& node, const std::string& key) -> absl::Status {
      const auto* v = node.as_string();
      if (v == nullptr) {
        return Error(node, key, "expected a string");
      }
      config_->*field = v->get();
      return absl::OkStatus();
    };
  }

  // A list of strings: a TOML array, or one string with comma-separated items (the flag form).
  Setter List(std::vector<std::string> GatewayConfig::*field) {
    return [this, field](const toml::node& node, const std::string& key) -> absl::Status {
      std::vector<std::string> out;
      if (const auto* s = node.as_string()) {
        out = absl::StrSplit(s->get(), ',', absl::SkipEmpty());
      } else if (const auto* a = node.as_array()) {
        for (const toml::node& item : *a) {
          const auto* v = item.as_string();
          if (v == nullptr) {
            return Error(item, key, "expected an array of strings");
          }
          out.push_back(v->get());
        }
      } else {
        return Error(node, key, "expected an array of strings");
      }
      config_->*field = std::move(out);
      return absl::OkStatus();
    };
  }

  Setter Bool(bool GatewayConfig::*field) {
    return [this, field](const toml::node& node, const std::string& key) -> absl::Status {
      const auto* v = node.as_boolean();
      if (v == nullptr) {
        return Error(node, key, "expected true or false");
      }
      config_->*field = v->get();
      return absl::OkStatus();
    };
  }

  template <typename T>
  Setter Number(T GatewayConfig::*field, int64_t min) {
    return [this, field, min](const toml::node& node, const std::string& key) -> absl::Status {
      const auto* v = node.as_integer();
      if (v == nullptr) {
        return Error(node, key, "expected an integer");
      }
      const int64_t max = static_cast<int64_t>(
          std::min<uint64_t>(std::numeric_limits<T>::max(), std::numeric_limits<int64_t>::max()));
      if (v->get() < min || v->get() > max) {
        return Error(node, key,
                     absl::StrCat("out of range: ", v->get(), " (", min, "..", max, ")"));
      }
      config_->*field = static_cast<T>(v->get());
      return absl::OkStatus();
    };
  }

  const Setter* Find(const std::string& name) {
    if (setters_.empty()) {
      using C = GatewayConfig;
      setters_ = {
          {"agent_tls_listen", List(&C::agent_tls_listen)},
          {"agent_plain_listen", List(&C::agent_plain_listen)},
          {"cert", String(&C::cert_file)},
          {"key", String(&C::key_file)},
          {"allow_plain_with_tls", Bool(&C::allow_plain_with_tls)},
          {"kernel_tls", Bool(&C::kernel_tls)},
          {"streamer_keys", String(&C::streamer_keys_file)},
          {"ticket_keys", String(&C::ticket_keys_file)},
          {"agent_handshakes_per_second", Number(&C::agent_handshakes_per_second, 0)},
          {"agent_handshake_burst", Number(&C::agent_handshake_burst, 0)},
          {"frontend_listen", List(&C::frontend_listen)},
          {"frontend_allow", List(&C::frontend_allow)},
          {"frontend_token_file", String(&C::frontend_token_file)},
          {"host_suffix", String(&C::host_suffix)},
          {"admin_listen", List(&C::admin_listen)},
          {"admin_token_file", String(&C::admin_token_file)},
          {"handshake_timeout_ms", Number(&C::handshake_timeout_ms, 1)},
          {"head_timeout_ms", Number(&C::head_timeout_ms, 1)},
          {"open_timeout_ms", Number(&C::open_timeout_ms, 1)},
          {"heartbeat_ms", Number(&C::heartbeat_ms, 100)},
          {"heartbeat_misses", Number(&C::heartbeat_misses, 1)},
          {"reconnect_window_ms", Number(&C::reconnect_window_ms, 0)},
          {"drain_timeout_ms", Number(&C::drain_timeout_ms, 0)},
          {"drain_reconnect_ms", Number(&C::drain_reconnect_ms, 0)},
          {"max_pending_tunnels_per_agent", Number(&C::max_pending_tunnels_per_agent, 1)},
          {"spare_data_connections", Number(&C::spare_data_connections, 0)},
          {"spare_data_connections_max", Number(&C::spare_data_connections_max, 0)},
          {"spare_idle_ms", Number(&C::spare_idle_ms, 1000)},
          {"max_unauthenticated", Number(&C::max_unauthenticated, 1)},
          {"max_connections", Number(&C::max_connections, 1)},
          {"shards", Number(&C::shards, 0)},
          {"takeover_hold_ms", Number(&C::takeover_hold_ms, 1)},
          {"takeover_window_ms", Number(&C::takeover_window_ms, 1)},
          {"log_level", String(&C::log_level)},
          {"log_burst", Number(&C::log_burst, 1)},
      };
    }
    for (const auto& [key, setter] : setters_) {
      if (key == name) {
        return &setter;
      }
    }
    return nullptr;
  }

  std::string_view source_;
  GatewayConfig* config_;
  std::vector<std::pair<std::string, Setter>> setters_;
};

}  // namespace

absl::Status ApplyConfigText(std::string_view text, std::string_view source_name,
                             GatewayConfig* config) {
  toml::table table;
  try {
    table = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    const toml::source_position at = e.source().begin;
    return absl::InvalidArgumentError(absl::StrCat(
        absl::string_view(source_name.data(), source_name.size()), ":", at.line, ":", at.column,
        ": ", absl::string_view(e.description().data(), e.description().size())));
  }
  // Apply to a copy: a file with an error changes nothing.
  GatewayConfig fresh = *config;
  if (absl::Status s = Reader(source_name, &fresh).Apply(table); !s.ok()) {
    return s;
  }
  *config = std::move(fresh);
  return absl::OkStatus();
}

absl::Status ApplyConfigFile(const std::string& path, GatewayConfig* config) {
  auto text = runtime::ReadWholeFile(path);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open the configuration file"));
  }
  return ApplyConfigText(*text, path, config);
}

}  // namespace camtunnel::gateway
