// Command line of camtunnel-agentsim: `camtunnel-agentsim SCENARIO [--flag value | --flag=value]`,
// the flags being absl flags (options.cc). Every value is checked here, before anything starts,
// so a bad parameter is one clear message and exit status 2, never a half-started load.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agentsim/rtp_packetizer.h"

namespace camtunnel::agentsim {

enum class Scenario : uint8_t { kSteady, kChurn, kStorm, kOpenRate, kSoak };
std::string_view ScenarioName(Scenario s);

// Misbehaviour of the simulated RTSP cameras, every `fault_every`-th packet: proves the
// media side's verification catches each kind.
enum class CameraFault : uint8_t { kNone, kDrop, kDuplicate, kReorder };
std::string_view CameraFaultName(CameraFault f);

// storm: who breaks the connections. kSelf closes every control connection at once; kGateway
// waits for the gateway to drop them (a restart) and measures the recovery.
enum class StormTrigger : uint8_t { kSelf, kGateway };

// One per process, its fields grouped as the command line documents them: reordering them to
// save padding bytes would cost the reader more than the bytes are worth.
struct Options {  // NOLINT(clang-analyzer-optin.performance.Padding)
  Scenario scenario = Scenario::kSteady;

  // Where and how agents connect.
  sockaddr_storage gateway_agent{};
  std::string gateway_agent_text;
  bool tls = true;
  std::string ca_file;
  bool insecure = false;
  bool tls_resume = true;   // resume each agent's newest TLS session, as the real agent does
  std::string server_name;  // SNI and certificate name check; empty: chain check only
  std::string streamer_keys_file;
  std::string key_id;  // empty: the first key of the file
  uint32_t agents = 100;
  uint32_t agent_index_base = 0;  // ids are <prefix><base>, <prefix><base+1>, ...
  std::string agent_prefix = "sim-";
  std::vector<sockaddr_storage> sources;  // empty: the kernel picks
  uint32_t connect_concurrency = 256;     // agent handshakes in flight at once
  double connect_rate = 0;                // new agent connections per second; 0: no pacing
  double connect_timeout_s = 60;          // connect phase: all agents up, or give up waiting
  uint32_t backoff_max_ms = 5000;
  bool honour_reconnect_window = true;  // wait rand[0, window) after losing a session

  // Managed mode (on when manager_url is given): each agent activates at the manager, links to
  // it and takes its gateway, key and key reference from ASSIGN, as a managed camtunnel-agent
  // does; --gateway_agent and --streamer_keys are not used then.
  std::string manager_url;  // the activation server, https://host[:port]
  std::string factory_master_file;
  std::string operator_id;
  std::string manager_ca_file;  // empty: --ca
  bool managed() const { return !manager_url.empty(); }

  // The media server's side.
  sockaddr_storage frontend{};
  std::string frontend_text;
  bool has_frontend = false;
  uint32_t streams = 0;       // concurrent RTSP sessions
  double stream_seconds = 0;  // length of one session; 0: the whole load phase
  VideoParams video;
  double snapshot_rate = 0;  // snapshot requests per second
  uint32_t snapshot_concurrency = 64;
  uint64_t snapshot_bytes = uint64_t{64} * 1024;
  CameraFault camera_fault = CameraFault::kNone;
  uint32_t fault_every = 100;
  double open_timeout_s = 10;  // media request to first answer byte

  double duration_s = 10;  // the load phase
  std::string json_out;
  std::string metrics_listen;

  // churn / soak
  double churn_rate = 0;  // control connections dropped per second
  uint32_t churn_down_ms = 1000;
  // storm
  StormTrigger storm_trigger = StormTrigger::kSelf;
  double storm_after_s = 2;
  double after_storm_s = 0;  // load kept running after the recovery, to check media resumes
  // open-rate
  double start_rate = 20;
  double rate_step = 20;
  double step_s = 2;
  double max_rate = 5000;
  double max_p99_ms = 250;
  double max_error_ratio = 0.01;
  // soak
  int gateway_pid = 0;

  // Several processes (the fd limit caps one process's agents): the parent coordinates
  // `processes` workers of itself (coordinator.h). `worker`: this process is one of them.
  uint32_t processes = 1;
  bool worker = false;
};

// argv[1] is the scenario name, the rest are flags; they set agentsim's absl flags (the last
// occurrence wins) and are checked together. Errors carry the reason, for "agentsim: <reason>"
// and exit 2 (absl::ParseCommandLine would exit 1, which means integrity errors here).
absl::StatusOr<Options> ParseOptions(int argc, char** argv);
// What --help prints before the flags: synopsis, scenarios, exit status.
std::string UsageMessage();
// Whether flag `name` (without "--") takes a value; false for a boolean or unknown flag.
bool FlagTakesValue(const std::string& name);

// "127.0.0.2-127.0.0.9", "127.0.0.2", or a comma list of either (IPv4 or IPv6 singles).
absl::StatusOr<std::vector<sockaddr_storage>> ParseSources(const std::string& text);
// "host:port" / "[v6]:port" with a non-zero port.
absl::StatusOr<sockaddr_storage> ParseConnectAddress(const std::string& text);
// "2M", "500k", "1.5G", "64000" (bits or bytes, as the caller means them).
absl::StatusOr<uint64_t> ParseScaled(const std::string& text);

}  // namespace camtunnel::agentsim
