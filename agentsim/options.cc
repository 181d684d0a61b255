// See options.h. The flags are absl flags (their help, defaults and value syntax are absl's, as
// for the gateway and the manager); what they mean together is checked in OptionsFromFlags.
#include "agentsim/options.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/identifiers.h"
#include "runtime/listener.h"

// Where and how agents connect.
ABSL_FLAG(std::string, gateway_agent, "",
          "ADDR: the gateway's agent listener (TLS or plain), host:port (required)");
ABSL_FLAG(bool, tls, true, "Agents speak TLS");
ABSL_FLAG(bool, plain, false, "Agents speak plain TCP with frame MACs (instead of --tls)");
ABSL_FLAG(std::string, ca, "", "FILE: CA certificates to verify the gateway with");
ABSL_FLAG(bool, insecure, false, "Do not verify the gateway's certificate");
ABSL_FLAG(bool, tls_resume, true,
          "Each agent resumes its newest TLS session, as the real agent does; --notls_resume: "
          "full TLS handshakes only");
ABSL_FLAG(std::string, server_name, "",
          "NAME: SNI and certificate name (empty: the gateway host if it is not an IP)");
ABSL_FLAG(std::string, streamer_keys, "",
          "FILE: the gateway's streamer keys ('<key id> <64 hex>' lines) (required)");
ABSL_FLAG(std::string, key_id, "", "ID: streamer key to derive from (empty: the first)");
ABSL_FLAG(uint32_t, agents, 100, "N: simulated agents");
ABSL_FLAG(uint32_t, agent_index_base, 0, "B: the first agent's number: ids are P<B>, P<B+1>, ...");
ABSL_FLAG(std::string, agent_prefix, "sim-", "P: agent ids are P0, P1, ...");
ABSL_FLAG(std::string, sources, "",
          "A-B: source addresses for agent connections, e.g. 127.0.0.2-127.0.0.9 (empty: the "
          "kernel picks)");
ABSL_FLAG(uint32_t, connect_concurrency, 256, "N: agent handshakes in flight at once");
ABSL_FLAG(double, connect_rate, 0, "R: new agent connections per second, 0 = unpaced");
ABSL_FLAG(double, connect_timeout, 60, "S: longest wait for all agents to come up");
ABSL_FLAG(uint32_t, backoff_max_ms, 5000, "MS: reconnect backoff cap");
ABSL_FLAG(bool, reconnect_window, true,
          "Reconnect within WELCOME's window after a lost session; --noreconnect_window: at once");
// Managed mode.
ABSL_FLAG(std::string, manager_url, "",
          "URL: managed mode: agents activate here (https://host[:port]), link to the manager "
          "the answer names and connect to the gateways it assigns");
ABSL_FLAG(std::string, factory_master_file, "",
          "FILE: managed mode: the factory master key (64 hex); each agent's factory secret is "
          "derived from it and the agent's serial (its id)");
ABSL_FLAG(std::string, operator, "", "ID: managed mode: the operator id agents activate with");
ABSL_FLAG(std::string, manager_ca_file, "",
          "FILE: managed mode: CA certificates to verify the manager with (empty: --ca)");
// The media server's side.
ABSL_FLAG(std::string, frontend, "",
          "ADDR: the gateway's media-server frontend, host:port (required for media load)");
ABSL_FLAG(uint32_t, streams, 0,
          "M: concurrent RTSP sessions through the frontend (soak: min(agents, 10))");
ABSL_FLAG(double, stream_seconds, 0,
          "S: length of one RTSP session, then a new one (0: whole run)");
ABSL_FLAG(std::string, bitrate, "1M", "B: bits per second per stream, e.g. 2M");
ABSL_FLAG(uint32_t, fps, 25, "F: frames per second");
ABSL_FLAG(uint32_t, gop, 50, "G: frames from one IDR to the next");
ABSL_FLAG(double, snapshot_rate, 0, "R: snapshot requests per second (soak: 5)");
ABSL_FLAG(uint32_t, snapshot_concurrency, 64, "N: snapshot requests in flight at most");
ABSL_FLAG(std::string, snapshot_size, "65536",
          "BYTES: snapshot body size; k, M = 10^3, 10^6 (open-rate: 1k)");
ABSL_FLAG(std::string, camera_fault, "none",
          "KIND: cameras misbehave on purpose: none, drop, duplicate or reorder");
ABSL_FLAG(uint32_t, fault_every, 100, "N: one faulty packet in N");
ABSL_FLAG(double, open_timeout, 10, "S: media request to first answer byte");
// The run.
ABSL_FLAG(double, duration, 10, "S: seconds of load after the agents are up");
ABSL_FLAG(std::string, json_out, "", "FILE: write the JSON report here");
ABSL_FLAG(std::string, metrics_listen, "",
          "ADDR: serve Prometheus /metrics here (e.g. 127.0.0.1:0)");
ABSL_FLAG(uint32_t, processes, 1,
          "N: split the fleet and load over N worker processes, one merged report");
ABSL_FLAG(bool, worker, false,
          "(internal) run as one of --processes' workers: status lines on stdout");
// Scenarios.
ABSL_FLAG(double, churn_rate, 0,
          "R: control connections dropped per second (churn: 5 and soak: 0.5 unless given)");
ABSL_FLAG(uint32_t, churn_down_ms, 1000, "MS: how long a churned agent stays away");
ABSL_FLAG(std::string, storm_trigger, "self",
          "self|gateway: storm: drop all at once, or wait for a gateway restart");
ABSL_FLAG(double, storm_after, 2, "S: storm: seconds after all are up before the self trigger");
ABSL_FLAG(double, after_storm, 0,
          "S: storm: seconds of load after the recovery before the run ends");
ABSL_FLAG(double, start_rate, 20, "R: open-rate: first step, opens per second");
ABSL_FLAG(double, rate_step, 20, "R: open-rate: increase per step");
ABSL_FLAG(double, step_seconds, 2, "S: open-rate: length of a step");
ABSL_FLAG(double, max_rate, 5000, "R: open-rate: stop at this rate");
ABSL_FLAG(double, max_p99_ms, 250, "MS: open-rate: a step whose p99 exceeds this ends the ramp");
ABSL_FLAG(double, max_error_ratio, 0.01,
          "X: open-rate: a step with more failed opens ends the ramp");
ABSL_FLAG(int32_t, gateway_pid, 0, "PID: sample this process's RSS and CPU each second (soak)");

namespace camtunnel::agentsim {
namespace {

absl::Status Bad(const std::string& flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", why));
}

// The flag `name` if agentsim defines it: absl also knows its own (--flagfile, ...) and those of
// any library linked in, which agentsim does not take.
absl::CommandLineFlag* FindAgentsimFlag(const std::string& name) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  const std::string here = absl::GetFlagReflectionHandle(FLAGS_agents).Filename();
  return flag != nullptr && flag->Filename() == here ? flag : nullptr;
}

// What a flag's value must be, for the message when absl cannot parse it.
const char* ValueKind(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<bool>()) {
    return "true or false";
  }
  if (flag.IsOfType<uint32_t>() || flag.IsOfType<int32_t>()) {
    return "a whole number";
  }
  return "a number";
}

// Sets agentsim's flags from argv[first..], as absl::ParseCommandLine would (--name=value,
// --name value, --bool, --nobool; the last occurrence wins), but returns an error instead of
// exiting 1: a bad parameter is exit status 2 here, and tests parse many command lines.
// `*given` receives the name of every flag set.
absl::Status SetFlags(int argc, char** argv, int first, std::set<std::string>* given) {
  for (int i = first; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      return absl::InvalidArgumentError("unexpected argument '" + std::string(arg) + "'");
    }
    arg.remove_prefix(arg.starts_with("--") ? 2 : 1);
    std::string name(arg.substr(0, arg.find('=')));
    std::optional<std::string> value;
    if (const size_t eq = arg.find('='); eq != std::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
    }
    absl::CommandLineFlag* flag = FindAgentsimFlag(name);
    if (flag == nullptr && name.starts_with("no")) {
      // --nofoo is --foo=false for a boolean foo.
      flag = FindAgentsimFlag(name.substr(2));
      if (flag == nullptr || !flag->IsOfType<bool>()) {
        return absl::InvalidArgumentError("unknown flag --" + name + " (see --help)");
      }
      if (value) {
        return Bad(name, "takes no value");
      }
      name = name.substr(2);
      value = "false";
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError("unknown flag --" + name + " (see --help)");
    }
    if (!value) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return Bad(name, "needs a value");
      }
    }
    if (std::string error; !flag->ParseFrom(*value, &error)) {
      return Bad(name, absl::StrCat("'", *value, "' is not ", ValueKind(*flag)));
    }
    given->insert(name);
  }
  return absl::OkStatus();
}

// A number flag's value within [lo, hi], or an error naming the flag.
template <typename T>
absl::Status InRange(const char* name, const absl::Flag<T>& flag, double lo, double hi, T* out) {
  const T v = absl::GetFlag(flag);
  if (!std::isfinite(static_cast<double>(v)) || v < lo || v > hi) {
    return Bad(name, absl::StrCat(v, " is outside [", lo, ", ", hi, "]"));
  }
  *out = v;
  return absl::OkStatus();
}

// Managed mode's own flags: the activation URL must be https (the request carries the factory
// secret, the answer the agent secret), the operator is required, the master key readable.
template <typename Has>
absl::Status ManagedOptionsFromFlags(const Has& has, Options& o) {
  if (!o.manager_url.starts_with("https://")) {
    return Bad("manager_url", "'" + o.manager_url + "': activation is https://host[:port] only");
  }
  if (has("gateway_agent") || has("streamer_keys")) {
    return absl::InvalidArgumentError(
        "--manager_url excludes --gateway_agent and --streamer_keys: the manager assigns "
        "gateways and keys");
  }
  o.factory_master_file = absl::GetFlag(FLAGS_factory_master_file);
  if (o.factory_master_file.empty()) {
    return absl::InvalidArgumentError("--manager_url needs --factory_master_file FILE");
  }
  o.operator_id = absl::GetFlag(FLAGS_operator);
  if (o.operator_id.empty()) {
    return absl::InvalidArgumentError("--manager_url needs --operator ID");
  }
  o.manager_ca_file = absl::GetFlag(FLAGS_manager_ca_file);
  return absl::OkStatus();
}

absl::StatusOr<Options> OptionsFromFlags(Scenario scenario, const std::set<std::string>& given) {
  auto has = [&](const char* name) { return given.count(name) != 0; };
  Options o;
  o.scenario = scenario;
  o.manager_url = absl::GetFlag(FLAGS_manager_url);
  if (has("manager_url") && o.manager_url.empty()) {
    return Bad("manager_url", "empty");
  }
  if (o.managed()) {
    if (absl::Status s = ManagedOptionsFromFlags(has, o); !s.ok()) {
      return s;
    }
  } else {
    if (!has("gateway_agent")) {
      return absl::InvalidArgumentError("--gateway_agent is required");
    }
    o.gateway_agent_text = absl::GetFlag(FLAGS_gateway_agent);
    if (auto a = ParseConnectAddress(o.gateway_agent_text); a.ok()) {
      o.gateway_agent = *a;
    } else {
      return Bad("gateway_agent", std::string(a.status().message()));
    }
    if (!has("streamer_keys")) {
      return absl::InvalidArgumentError("--streamer_keys is required");
    }
    o.streamer_keys_file = absl::GetFlag(FLAGS_streamer_keys);
  }
  if (has("tls") && has("plain")) {
    return absl::InvalidArgumentError("--tls and --plain exclude each other");
  }
  o.tls = absl::GetFlag(FLAGS_tls) && !absl::GetFlag(FLAGS_plain);
  o.ca_file = absl::GetFlag(FLAGS_ca);
  o.insecure = absl::GetFlag(FLAGS_insecure);
  o.tls_resume = absl::GetFlag(FLAGS_tls_resume);
  o.server_name = absl::GetFlag(FLAGS_server_name);
  o.key_id = absl::GetFlag(FLAGS_key_id);
  o.agent_prefix = absl::GetFlag(FLAGS_agent_prefix);
  o.honour_reconnect_window = absl::GetFlag(FLAGS_reconnect_window);
  o.json_out = absl::GetFlag(FLAGS_json_out);
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  o.worker = absl::GetFlag(FLAGS_worker);
  if (const std::string sources = absl::GetFlag(FLAGS_sources); has("sources")) {
    auto parsed = ParseSources(sources);
    if (!parsed.ok()) {
      return Bad("sources", std::string(parsed.status().message()));
    }
    o.sources = std::move(*parsed);
  }
  if (has("frontend")) {
    o.frontend_text = absl::GetFlag(FLAGS_frontend);
    auto a = ParseConnectAddress(o.frontend_text);
    if (!a.ok()) {
      return Bad("frontend", std::string(a.status().message()));
    }
    o.frontend = *a;
    o.has_frontend = true;
  }
  for (absl::Status s : {
           InRange("agents", FLAGS_agents, 1, 1000000, &o.agents),
           InRange("agent_index_base", FLAGS_agent_index_base, 0, 1e9, &o.agent_index_base),
           InRange("processes", FLAGS_processes, 1, 1024, &o.processes),
           InRange("duration", FLAGS_duration, 0.1, 7 * 86400, &o.duration_s),
           InRange("connect_concurrency", FLAGS_connect_concurrency, 1, 1e5,
                   &o.connect_concurrency),
           InRange("connect_rate", FLAGS_connect_rate, 0, 1e6, &o.connect_rate),
           InRange("connect_timeout", FLAGS_connect_timeout, 0.1, 3600, &o.connect_timeout_s),
           InRange("backoff_max_ms", FLAGS_backoff_max_ms, 10, 600000, &o.backoff_max_ms),
           InRange("streams", FLAGS_streams, 0, 1e6, &o.streams),
           InRange("stream_seconds", FLAGS_stream_seconds, 0, 7 * 86400, &o.stream_seconds),
           InRange("snapshot_rate", FLAGS_snapshot_rate, 0, 1e6, &o.snapshot_rate),
           InRange("snapshot_concurrency", FLAGS_snapshot_concurrency, 1, 100000,
                   &o.snapshot_concurrency),
           InRange("fault_every", FLAGS_fault_every, 2, 1e9, &o.fault_every),
           InRange("open_timeout", FLAGS_open_timeout, 0.1, 600, &o.open_timeout_s),
           InRange("churn_rate", FLAGS_churn_rate, 0, 1e6, &o.churn_rate),
           InRange("churn_down_ms", FLAGS_churn_down_ms, 0, 3600000, &o.churn_down_ms),
           InRange("storm_after", FLAGS_storm_after, 0, 86400, &o.storm_after_s),
           InRange("after_storm", FLAGS_after_storm, 0, 86400, &o.after_storm_s),
           InRange("start_rate", FLAGS_start_rate, 0.1, 1e6, &o.start_rate),
           InRange("rate_step", FLAGS_rate_step, 0, 1e6, &o.rate_step),
           InRange("step_seconds", FLAGS_step_seconds, 0.5, 3600, &o.step_s),
           InRange("max_rate", FLAGS_max_rate, 0.1, 1e6, &o.max_rate),
           InRange("max_p99_ms", FLAGS_max_p99_ms, 0.01, 600000, &o.max_p99_ms),
           InRange("max_error_ratio", FLAGS_max_error_ratio, 0, 1, &o.max_error_ratio),
       }) {
    if (!s.ok()) {
      return s;
    }
  }
  // 0 is the default (no sampling); a given pid must be a real one.
  if (has("gateway_pid")) {
    if (absl::Status s = InRange("gateway_pid", FLAGS_gateway_pid, 1, 1 << 22, &o.gateway_pid);
        !s.ok()) {
      return s;
    }
  }
  const std::string bitrate = absl::GetFlag(FLAGS_bitrate);
  if (auto b = ParseScaled(bitrate); b.ok() && *b >= 8000 && *b <= 10000000000ull) {
    o.video.bitrate_bps = *b;
  } else {
    return Bad("bitrate", "'" + bitrate + "': want 8k..10G bits per second");
  }
  o.video.fps = absl::GetFlag(FLAGS_fps);
  if (o.video.fps < 1 || o.video.fps > 240) {
    return Bad("fps", absl::StrCat("'", o.video.fps, "': want 1..240"));
  }
  // Two IDRs in a row would repeat the sample's idr_pic_id, which H.264 forbids.
  o.video.gop = absl::GetFlag(FLAGS_gop);
  if (o.video.gop < 2 || o.video.gop > 100000) {
    return Bad("gop", absl::StrCat("'", o.video.gop, "': want 2..100000 frames"));
  }
  const std::string snapshot_size = absl::GetFlag(FLAGS_snapshot_size);
  if (auto b = ParseScaled(snapshot_size); b.ok() && *b >= 16 && *b <= uint64_t{64} * 1024 * 1024) {
    o.snapshot_bytes = *b;
  } else {
    return Bad("snapshot_size", "'" + snapshot_size + "': want 16..64M bytes");
  }
  static const std::map<std::string, CameraFault> kFaults = {{"none", CameraFault::kNone},
                                                             {"drop", CameraFault::kDrop},
                                                             {"duplicate", CameraFault::kDuplicate},
                                                             {"reorder", CameraFault::kReorder}};
  const std::string fault = absl::GetFlag(FLAGS_camera_fault);
  if (auto it = kFaults.find(fault); it != kFaults.end()) {
    o.camera_fault = it->second;
  } else {
    return Bad("camera_fault", "'" + fault + "': want none, drop, duplicate or reorder");
  }
  const std::string trigger = absl::GetFlag(FLAGS_storm_trigger);
  if (trigger == "self") {
    o.storm_trigger = StormTrigger::kSelf;
  } else if (trigger == "gateway") {
    o.storm_trigger = StormTrigger::kGateway;
  } else {
    return Bad("storm_trigger", "'" + trigger + "': want self or gateway");
  }

  if (o.managed()) {
    // The gateways' transport is their URL's (ASSIGN); https ones need --ca or --insecure.
    o.tls = !o.ca_file.empty() || o.insecure;
    if (o.manager_ca_file.empty()) {
      o.manager_ca_file = o.ca_file;
    }
    if (o.manager_ca_file.empty() && !o.insecure) {
      return absl::InvalidArgumentError(
          "--manager_url needs --manager_ca_file FILE (or --ca FILE, or --insecure)");
    }
  } else if (o.tls && o.ca_file.empty() && !o.insecure) {
    return absl::InvalidArgumentError("--tls needs --ca FILE or --insecure");
  }
  if (!o.key_id.empty() && !proto::IsValidKeyId(o.key_id)) {
    return Bad("key_id", "'" + o.key_id + "': 1..32 of [A-Za-z0-9_-]");
  }
  const std::string first = o.agent_prefix + std::to_string(o.agent_index_base);
  const std::string last =
      o.agent_prefix + std::to_string(uint64_t{o.agent_index_base} + o.agents - 1);
  if (!proto::IsCanonicalAgentId(first) || !proto::IsCanonicalAgentId(last)) {
    return Bad("agent_prefix", "'" + o.agent_prefix + "' makes ids like '" + last +
                                   "' that are not canonical (1..63 of [a-z0-9-], no "
                                   "leading/trailing '-')");
  }
  // Scenario defaults that make each one meaningful without extra flags.
  if (o.scenario == Scenario::kChurn && !has("churn_rate")) {
    o.churn_rate = 5;
  }
  if (o.scenario == Scenario::kSoak) {
    if (!has("streams")) {
      o.streams = std::min<uint32_t>(o.agents, 10);
    }
    if (!has("snapshot_rate")) {
      o.snapshot_rate = 5;
    }
    if (!has("churn_rate")) {
      o.churn_rate = 0.5;
    }
  }
  if (o.scenario == Scenario::kOpenRate && !has("snapshot_size")) {
    o.snapshot_bytes = 1024;  // opens, not bytes, are measured
  }
  const bool media = o.streams > 0 || o.snapshot_rate > 0 || o.scenario == Scenario::kOpenRate;
  if (media && !o.has_frontend) {
    return absl::InvalidArgumentError(
        "--frontend ADDR is required for media load (--streams, --snapshot_rate, open-rate)");
  }
  if (o.scenario == Scenario::kOpenRate && o.max_rate < o.start_rate) {
    return Bad("max_rate", "below --start_rate");
  }
  if (o.processes > o.agents) {
    return Bad("processes", "more processes than --agents");
  }
  if (o.processes > 1 && o.worker) {
    return Bad("processes", "a worker does not start workers");
  }
  if (o.server_name.empty() && !has("server_name")) {
    // A name is checked against the certificate; an address literal is not a name.
    const std::string host = o.gateway_agent_text.substr(0, o.gateway_agent_text.rfind(':'));
    in6_addr a6;
    in_addr a4;
    if (!host.empty() && host[0] != '[' && inet_pton(AF_INET, host.c_str(), &a4) != 1 &&
        inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
      o.server_name = host;
    }
  }
  return o;
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
  auto scenario = kScenarios.find(argv[1]);
  if (scenario == kScenarios.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown scenario '", argv[1], "': want steady, churn, storm, open-rate or soak"));
  }
  std::set<std::string> given;
  if (absl::Status s = SetFlags(argc, argv, 2, &given); !s.ok()) {
    return s;
  }
  return OptionsFromFlags(scenario->second, given);
}

std::string UsageMessage() {
  return "camtunnel-agentsim: thousands of simulated agents and cameras, and the media server's "
         "load, against a gateway (agentsim/README.md).\n"
         "usage: camtunnel-agentsim SCENARIO --gateway_agent ADDR --streamer_keys FILE "
         "[flags]\n"
         "       camtunnel-agentsim SCENARIO --manager_url URL --factory_master_file FILE "
         "--operator ID [flags]   (managed mode)\n"
         "scenarios:\n"
         "  steady     N agents, M concurrent streams at bitrate B for the duration\n"
         "  churn      steady, while agents drop their control connection at --churn_rate\n"
         "  storm      all agents reconnect at once (self) or after a gateway restart: time to "
         "recover\n"
         "  open-rate  tunnel opens per second ramp until p99 latency or errors climb\n"
         "  soak       long mixed load; --gateway_pid RSS/CPU sampled each second\n"
         "exit status: 0 pass, 1 integrity errors found, 2 bad parameter, 3 runtime failure";
}

bool FlagTakesValue(const std::string& name) {
  const absl::CommandLineFlag* flag = FindAgentsimFlag(name);
  return flag != nullptr && !flag->IsOfType<bool>();
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
