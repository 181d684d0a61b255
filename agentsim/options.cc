#include "agentsim/options.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/identifiers.h"
#include "runtime/listener.h"

namespace camtunnel::agentsim {
namespace {

using Setter = std::function<absl::Status(Options&, const std::string&)>;

struct Flag {
  bool takes_value;
  Setter set;
  const char* help;
};

absl::Status Bad(const std::string& flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", why));
}

// Parses a number into `*out` and checks [lo, hi].
template <typename T>
Setter Number(const std::string& name, T Options::*field, double lo, double hi) {
  return [name, field, lo, hi](Options& o, const std::string& v) -> absl::Status {
    double d = 0;
    if (!absl::SimpleAtod(v, &d) || !std::isfinite(d)) {
      return Bad(name, "'" + v + "' is not a number");
    }
    if (d < lo || d > hi) {
      return Bad(name, absl::StrCat(v, " is outside [", lo, ", ", hi, "]"));
    }
    if constexpr (std::is_integral_v<T>) {
      if (d != std::floor(d)) {
        return Bad(name, "'" + v + "' is not a whole number");
      }
    }
    o.*field = static_cast<T>(d);
    return absl::OkStatus();
  };
}

Setter Text(std::string Options::*field) {
  return [field](Options& o, const std::string& v) {
    o.*field = v;
    return absl::OkStatus();
  };
}

std::map<std::string, Flag> Flags() {
  std::map<std::string, Flag> f;
  f["gateway-agent"] = {true,
                        [](Options& o, const std::string& v) -> absl::Status {
                          auto a = ParseConnectAddress(v);
                          if (!a.ok()) {
                            return Bad("gateway-agent", std::string(a.status().message()));
                          }
                          o.gateway_agent = *a;
                          o.gateway_agent_text = v;
                          return absl::OkStatus();
                        },
                        "ADDR  the gateway's agent listener (TLS or plain), host:port"};
  f["tls"] = {false, [](Options& o, const std::string&) { return o.tls = true, absl::OkStatus(); },
              "agents speak TLS (default)"};
  f["plain"] = {false,
                [](Options& o, const std::string&) { return o.tls = false, absl::OkStatus(); },
                "agents speak plain TCP with frame MACs"};
  f["ca"] = {true, Text(&Options::ca_file), "FILE  CA certificates to verify the gateway with"};
  f["insecure"] = {
      false, [](Options& o, const std::string&) { return o.insecure = true, absl::OkStatus(); },
      "do not verify the gateway's certificate"};
  f["no-tls-resume"] = {
      false, [](Options& o, const std::string&) { return o.tls_resume = false, absl::OkStatus(); },
      "full TLS handshakes only (by default each agent resumes its newest session, as the real "
      "agent does)"};
  f["server-name"] = {true, Text(&Options::server_name),
                      "NAME  SNI and certificate name (default: the gateway host if not an IP)"};
  f["frontend"] = {true,
                   [](Options& o, const std::string& v) -> absl::Status {
                     auto a = ParseConnectAddress(v);
                     if (!a.ok()) {
                       return Bad("frontend", std::string(a.status().message()));
                     }
                     o.frontend = *a;
                     o.frontend_text = v;
                     o.has_frontend = true;
                     return absl::OkStatus();
                   },
                   "ADDR  the gateway's media-server frontend, host:port"};
  f["streamer-keys"] = {true, Text(&Options::streamer_keys_file),
                        "FILE  the gateway's streamer keys ('<key id> <64 hex>' lines)"};
  f["key-id"] = {true, Text(&Options::key_id), "ID  streamer key to derive from (default: first)"};
  f["agents"] = {true, Number("agents", &Options::agents, 1, 1000000), "N  simulated agents"};
  f["agent-index-base"] = {true, Number("agent-index-base", &Options::agent_index_base, 0, 1e9),
                           "B  the first agent's number (0): ids are P<B>, P<B+1>, ..."};
  f["processes"] = {true, Number("processes", &Options::processes, 1, 1024),
                    "N  split the fleet and load over N worker processes, one merged report (1)"};
  f["worker"] = {false,
                 [](Options& o, const std::string&) { return o.worker = true, absl::OkStatus(); },
                 "(internal) run as one of --processes' workers: status lines on stdout"};
  f["agent-prefix"] = {true, Text(&Options::agent_prefix), "P  agent ids are P0, P1, ..."};
  f["sources"] = {true,
                  [](Options& o, const std::string& v) -> absl::Status {
                    auto s = ParseSources(v);
                    if (!s.ok()) {
                      return Bad("sources", std::string(s.status().message()));
                    }
                    o.sources = std::move(*s);
                    return absl::OkStatus();
                  },
                  "A-B  source addresses for agent connections, e.g. 127.0.0.2-127.0.0.9"};
  f["duration"] = {true, Number("duration", &Options::duration_s, 0.1, 7 * 86400),
                   "S  seconds of load after the agents are up"};
  f["json-out"] = {true, Text(&Options::json_out), "FILE  write the JSON report here"};
  f["metrics-listen"] = {true, Text(&Options::metrics_listen),
                         "ADDR  serve Prometheus /metrics here (e.g. 127.0.0.1:0)"};
  f["connect-concurrency"] = {true,
                              Number("connect-concurrency", &Options::connect_concurrency, 1, 1e5),
                              "N  agent handshakes in flight at once (256)"};
  f["connect-rate"] = {true, Number("connect-rate", &Options::connect_rate, 0, 1e6),
                       "R  new agent connections per second, 0 = unpaced (0)"};
  f["connect-timeout"] = {true, Number("connect-timeout", &Options::connect_timeout_s, 0.1, 3600),
                          "S  longest wait for all agents to come up (60)"};
  f["backoff-max-ms"] = {true, Number("backoff-max-ms", &Options::backoff_max_ms, 10, 600000),
                         "MS  reconnect backoff cap (5000)"};
  f["no-reconnect-window"] = {false,
                              [](Options& o, const std::string&) {
                                return o.honour_reconnect_window = false, absl::OkStatus();
                              },
                              "reconnect at once instead of within WELCOME's window"};
  f["streams"] = {true, Number("streams", &Options::streams, 0, 1e6),
                  "M  concurrent RTSP sessions through the frontend (0)"};
  f["stream-seconds"] = {true, Number("stream-seconds", &Options::stream_seconds, 0, 7 * 86400),
                         "S  length of one RTSP session, then a new one (0: whole run)"};
  f["bitrate"] = {true,
                  [](Options& o, const std::string& v) -> absl::Status {
                    auto b = ParseScaled(v);
                    if (!b.ok() || *b < 8000 || *b > 10000000000ull) {
                      return Bad("bitrate", "'" + v + "': want 8k..10G bits per second");
                    }
                    o.video.bitrate_bps = *b;
                    return absl::OkStatus();
                  },
                  "B  bits per second per stream, e.g. 2M (1M)"};
  f["fps"] = {true,
              [](Options& o, const std::string& v) {
                uint32_t fps = 0;
                if (!absl::SimpleAtoi(v, &fps) || fps < 1 || fps > 240) {
                  return Bad("fps", "'" + v + "': want 1..240");
                }
                o.video.fps = fps;
                return absl::OkStatus();
              },
              "F  frames per second (25)"};
  f["gop"] = {true,
              [](Options& o, const std::string& v) {
                uint32_t g = 0;
                // Two IDRs in a row would repeat the sample's idr_pic_id, which H.264 forbids.
                if (!absl::SimpleAtoi(v, &g) || g < 2 || g > 100000) {
                  return Bad("gop", "'" + v + "': want 2..100000 frames");
                }
                o.video.gop = g;
                return absl::OkStatus();
              },
              "G  frames from one IDR to the next (50)"};
  f["snapshot-rate"] = {true, Number("snapshot-rate", &Options::snapshot_rate, 0, 1e6),
                        "R  snapshot requests per second (0)"};
  f["snapshot-concurrency"] = {
      true, Number("snapshot-concurrency", &Options::snapshot_concurrency, 1, 100000),
      "N  snapshot requests in flight at most (64)"};
  f["snapshot-size"] = {true,
                        [](Options& o, const std::string& v) {
                          auto b = ParseScaled(v);
                          if (!b.ok() || *b < 16 || *b > 64 * 1024 * 1024) {
                            return Bad("snapshot-size", "'" + v + "': want 16..64M bytes");
                          }
                          o.snapshot_bytes = *b;
                          return absl::OkStatus();
                        },
                        "BYTES  snapshot body size; k, M = 10^3, 10^6 (64k)"};
  f["camera-fault"] = {true,
                       [](Options& o, const std::string& v) {
                         static const std::map<std::string, CameraFault> kFaults = {
                             {"none", CameraFault::kNone},
                             {"drop", CameraFault::kDrop},
                             {"duplicate", CameraFault::kDuplicate},
                             {"reorder", CameraFault::kReorder}};
                         auto it = kFaults.find(v);
                         if (it == kFaults.end()) {
                           return Bad("camera-fault", "'" + v +
                                                          "': want none, drop, duplicate or "
                                                          "reorder");
                         }
                         o.camera_fault = it->second;
                         return absl::OkStatus();
                       },
                       "KIND  cameras misbehave on purpose: drop|duplicate|reorder"};
  f["fault-every"] = {true, Number("fault-every", &Options::fault_every, 2, 1e9),
                      "N  one faulty packet in N (100)"};
  f["open-timeout"] = {true, Number("open-timeout", &Options::open_timeout_s, 0.1, 600),
                       "S  media request to first answer byte (10)"};
  f["churn-rate"] = {true, Number("churn-rate", &Options::churn_rate, 0, 1e6),
                     "R  control connections dropped per second (churn: 5, soak: 0.5)"};
  f["churn-down-ms"] = {true, Number("churn-down-ms", &Options::churn_down_ms, 0, 3600000),
                        "MS  how long a churned agent stays away (1000)"};
  f["storm-trigger"] = {true,
                        [](Options& o, const std::string& v) {
                          if (v == "self") {
                            o.storm_trigger = StormTrigger::kSelf;
                          } else if (v == "gateway") {
                            o.storm_trigger = StormTrigger::kGateway;
                          } else {
                            return Bad("storm-trigger", "'" + v + "': want self or gateway");
                          }
                          return absl::OkStatus();
                        },
                        "self|gateway  drop all at once, or wait for a gateway restart (self)"};
  f["storm-after"] = {true, Number("storm-after", &Options::storm_after_s, 0, 86400),
                      "S  storm: seconds after all are up before the self trigger (2)"};
  f["after-storm"] = {true, Number("after-storm", &Options::after_storm_s, 0, 86400),
                      "S  storm: seconds of load after the recovery before the run ends (0)"};
  f["start-rate"] = {true, Number("start-rate", &Options::start_rate, 0.1, 1e6),
                     "R  open-rate: first step, opens per second (20)"};
  f["rate-step"] = {true, Number("rate-step", &Options::rate_step, 0, 1e6),
                    "R  open-rate: increase per step (20)"};
  f["step-seconds"] = {true, Number("step-seconds", &Options::step_s, 0.5, 3600),
                       "S  open-rate: length of a step (2)"};
  f["max-rate"] = {true, Number("max-rate", &Options::max_rate, 0.1, 1e6),
                   "R  open-rate: stop at this rate (5000)"};
  f["max-p99-ms"] = {true, Number("max-p99-ms", &Options::max_p99_ms, 0.01, 600000),
                     "MS  open-rate: a step whose p99 exceeds this ends the ramp (250)"};
  f["max-error-ratio"] = {true, Number("max-error-ratio", &Options::max_error_ratio, 0, 1),
                          "X  open-rate: a step with more failed opens ends the ramp (0.01)"};
  f["gateway-pid"] = {true, Number("gateway-pid", &Options::gateway_pid, 1, 1 << 22),
                      "PID  sample this process's RSS and CPU each second (soak)"};
  return f;
}

absl::Status Validate(Options& o, const std::map<std::string, std::string>& given) {
  auto has = [&](const char* name) { return given.count(name) != 0; };
  if (!has("gateway-agent")) {
    return absl::InvalidArgumentError("--gateway-agent is required");
  }
  if (!has("streamer-keys")) {
    return absl::InvalidArgumentError("--streamer-keys is required");
  }
  if (has("tls") && has("plain")) {
    return absl::InvalidArgumentError("--tls and --plain exclude each other");
  }
  if (o.tls && o.ca_file.empty() && !o.insecure) {
    return absl::InvalidArgumentError("--tls needs --ca FILE or --insecure");
  }
  if (!o.key_id.empty() && !proto::IsValidKeyId(o.key_id)) {
    return Bad("key-id", "'" + o.key_id + "': 1..32 of [A-Za-z0-9_-]");
  }
  const std::string first = o.agent_prefix + std::to_string(o.agent_index_base);
  const std::string last =
      o.agent_prefix + std::to_string(uint64_t{o.agent_index_base} + o.agents - 1);
  if (!proto::IsCanonicalAgentId(first) || !proto::IsCanonicalAgentId(last)) {
    return Bad("agent-prefix", "'" + o.agent_prefix + "' makes ids like '" + last +
                                   "' that are not canonical (1..63 of [a-z0-9-], no "
                                   "leading/trailing '-')");
  }
  // Scenario defaults that make each one meaningful without extra flags.
  if (o.scenario == Scenario::kChurn && !has("churn-rate")) {
    o.churn_rate = 5;
  }
  if (o.scenario == Scenario::kSoak) {
    if (!has("streams")) {
      o.streams = std::min<uint32_t>(o.agents, 10);
    }
    if (!has("snapshot-rate")) {
      o.snapshot_rate = 5;
    }
    if (!has("churn-rate")) {
      o.churn_rate = 0.5;
    }
  }
  if (o.scenario == Scenario::kOpenRate && !has("snapshot-size")) {
    o.snapshot_bytes = 1024;  // opens, not bytes, are measured
  }
  const bool media = o.streams > 0 || o.snapshot_rate > 0 || o.scenario == Scenario::kOpenRate;
  if (media && !o.has_frontend) {
    return absl::InvalidArgumentError(
        "--frontend ADDR is required for media load (--streams, --snapshot-rate, open-rate)");
  }
  if (o.scenario == Scenario::kOpenRate && o.max_rate < o.start_rate) {
    return Bad("max-rate", "below --start-rate");
  }
  if (o.processes > o.agents) {
    return Bad("processes", "more processes than --agents");
  }
  if (o.processes > 1 && o.worker) {
    return Bad("processes", "a worker does not start workers");
  }
  if (o.server_name.empty() && !has("server-name")) {
    // A name is checked against the certificate; an address literal is not a name.
    const std::string host = o.gateway_agent_text.substr(0, o.gateway_agent_text.rfind(':'));
    in6_addr a6;
    in_addr a4;
    if (!host.empty() && host[0] != '[' && inet_pton(AF_INET, host.c_str(), &a4) != 1 &&
        inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
      o.server_name = host;
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view ScenarioName(Scenario s) {
  switch (s) {
    case Scenario::kSteady:
      return "steady";
    case Scenario::kChurn:
      return "churn";
    case Scenario::kStorm:
      return "storm";
    case Scenario::kOpenRate:
      return "open-rate";
    case Scenario::kSoak:
      return "soak";
  }
  return "?";
}

std::string_view CameraFaultName(CameraFault f) {
  switch (f) {
    case CameraFault::kNone:
      return "none";
    case CameraFault::kDrop:
      return "drop";
    case CameraFault::kDuplicate:
      return "duplicate";
    case CameraFault::kReorder:
      return "reorder";
  }
  return "?";
}

absl::StatusOr<Options> ParseOptions(int argc, char** argv) {
  if (argc < 2) {
    return absl::InvalidArgumentError("no scenario: want steady, churn, storm, open-rate or soak");
  }
  static const std::map<std::string, Scenario> kScenarios = {{"steady", Scenario::kSteady},
                                                             {"churn", Scenario::kChurn},
                                                             {"storm", Scenario::kStorm},
                                                             {"open-rate", Scenario::kOpenRate},
                                                             {"soak", Scenario::kSoak}};
  Options o;
  auto sc = kScenarios.find(argv[1]);
  if (sc == kScenarios.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown scenario '", argv[1], "': want steady, churn, storm, open-rate or soak"));
  }
  o.scenario = sc->second;
  const std::map<std::string, Flag> flags = Flags();
  std::map<std::string, std::string> given;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      return absl::InvalidArgumentError("unexpected argument '" + arg + "'");
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto it = flags.find(name);
    if (it == flags.end()) {
      return absl::InvalidArgumentError("unknown flag --" + name + " (see --help)");
    }
    if (it->second.takes_value && !value) {
      if (i + 1 >= argc) {
        return Bad(name, "needs a value");
      }
      value = argv[++i];
    }
    if (!it->second.takes_value && value) {
      return Bad(name, "takes no value");
    }
    if (absl::Status s = it->second.set(o, value.value_or("")); !s.ok()) {
      return s;
    }
    given[name] = value.value_or("");
  }
  if (absl::Status s = Validate(o, given); !s.ok()) {
    return s;
  }
  return o;
}

std::string Usage() {
  std::string u =
      "usage: camtunnel-agentsim SCENARIO [flags]\n"
      "scenarios:\n"
      "  steady     N agents, M concurrent streams at bitrate B for the duration\n"
      "  churn      steady, while agents drop their control connection at --churn-rate\n"
      "  storm      all agents reconnect at once (self) or after a gateway restart: time to "
      "recover\n"
      "  open-rate  tunnel opens per second ramp until p99 latency or errors climb\n"
      "  soak       long mixed load; --gateway-pid RSS/CPU sampled each second\n"
      "flags:\n";
  for (const auto& [name, flag] : Flags()) {
    absl::StrAppend(&u, "  --", name, " ", flag.help, "\n");
  }
  return u;
}

bool FlagTakesValue(const std::string& name) {
  const std::map<std::string, Flag> flags = Flags();
  auto it = flags.find(name);
  return it != flags.end() && it->second.takes_value;
}

absl::StatusOr<sockaddr_storage> ParseConnectAddress(const std::string& text) {
  absl::StatusOr<sockaddr_storage> a = runtime::ParseListenAddress(text);
  if (!a.ok()) {
    // A host name: resolved once, here, before anything runs (a blocking lookup is fine at
    // start-up, and every agent then dials the same address).
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return absl::InvalidArgumentError("'" + text + "': want host:port or [v6]:port");
    }
    const std::string host = text.substr(0, colon);
    const std::string port = text.substr(colon + 1);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (const int r = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); r != 0) {
      return absl::InvalidArgumentError("'" + text + "': " + gai_strerror(r));
    }
    sockaddr_storage ss{};
    std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    a = ss;
  }
  const uint16_t port = a->ss_family == AF_INET
                            ? ntohs(reinterpret_cast<const sockaddr_in*>(&*a)->sin_port)
                            : ntohs(reinterpret_cast<const sockaddr_in6*>(&*a)->sin6_port);
  if (port == 0) {
    return absl::InvalidArgumentError("'" + text + "': port 0 cannot be connected to");
  }
  return *a;
}

absl::StatusOr<std::vector<sockaddr_storage>> ParseSources(const std::string& text) {
  // One address per ~28,000 connections (ephemeral ports); 256 covers any process's fd limit.
  constexpr size_t kMaxSources = 256;
  std::vector<sockaddr_storage> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    const std::string item(part);
    std::vector<std::string> ends = absl::StrSplit(item, '-');
    if (ends.size() == 2) {
      in_addr lo{};
      in_addr hi{};
      if (inet_pton(AF_INET, ends[0].c_str(), &lo) != 1 ||
          inet_pton(AF_INET, ends[1].c_str(), &hi) != 1) {
        return absl::InvalidArgumentError("'" + item + "': a range is two IPv4 addresses A-B");
      }
      const uint32_t a = ntohl(lo.s_addr);
      const uint32_t b = ntohl(hi.s_addr);
      if (b < a || b - a >= kMaxSources) {
        return absl::InvalidArgumentError("'" + item + "': empty or over 256 addresses");
      }
      for (uint32_t x = a; x <= b; ++x) {
        sockaddr_storage ss{};
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(x);
        out.push_back(ss);
      }
      continue;
    }
    sockaddr_storage ss{};
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, item.c_str(), &sin->sin_addr) == 1) {
      sin->sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, item.c_str(), &sin6->sin6_addr) == 1) {
      sin6->sin6_family = AF_INET6;
    } else {
      return absl::InvalidArgumentError("'" + item + "' is not an IP address");
    }
    out.push_back(ss);
  }
  if (out.empty() || out.size() > kMaxSources) {
    return absl::InvalidArgumentError("'" + text + "': want 1..256 addresses");
  }
  return out;
}

absl::StatusOr<uint64_t> ParseScaled(const std::string& text) {
  if (text.empty()) {
    return absl::InvalidArgumentError("empty");
  }
  double scale = 1;
  std::string digits = text;
  switch (text.back()) {
    case 'k':
    case 'K':
      scale = 1e3;
      break;
    case 'm':
    case 'M':
      scale = 1e6;
      break;
    case 'g':
    case 'G':
      scale = 1e9;
      break;
    default:
      break;
  }
  if (scale != 1) {
    digits.pop_back();
  }
  double d = 0;
  if (!absl::SimpleAtod(digits, &d) || !std::isfinite(d) || d < 0 || d * scale > 1e15) {
    return absl::InvalidArgumentError("'" + text + "' is not a size like 64k, 2M or 1.5G");
  }
  return static_cast<uint64_t>(d * scale);
}

}  // namespace camtunnel::agentsim
