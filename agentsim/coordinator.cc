#include "agentsim/coordinator.h"

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agentsim/live_status.h"
#include "agentsim/progress_line.h"
#include "agentsim/report_merge.h"
#include "agentsim/sim_report.h"
#include "agentsim/sim_runner.h"
#include "runtime/clock.h"
#include "runtime/log.h"

extern char** environ;

namespace camtunnel::agentsim {
namespace {

// Flags the coordinator sets per worker (its share); everything else passes unchanged.
const std::set<std::string>& SplitFlags() {
  static const std::set<std::string> kFlags = {
      "processes",  "agents",    "agent_index_base", "streams",  "snapshot_rate",
      "churn_rate", "sources",   "metrics_listen",   "json_out", "gateway_pid",
      "start_rate", "rate_step", "max_rate"};
  return kFlags;
}

std::string AddressText(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

struct Worker {
  pid_t pid = -1;
  int out = -1;        // read end of its stdout
  std::string buffer;  // a partial line
  std::string json_path;
  LiveStatus status;
  std::optional<std::pair<uint64_t, double>> agents_up;  // up, seconds
  std::optional<double> load_done_s;
  int exit_status = -1;
};

// The worker's share of n: n/N, the first n%N workers one more.
uint64_t Share(uint64_t n, uint32_t workers, uint32_t i) {
  return n / workers + (i < n % workers ? 1 : 0);
}

std::vector<std::string> WorkerArgv(const Options& o, int argc, char** argv, uint32_t i,
                                    uint32_t first_agent, const std::string& json_path) {
  std::vector<std::string> out = {"/proc/self/exe", argv[1]};
  for (int k = 2; k < argc; ++k) {
    std::string name = argv[k];
    name = name.substr(std::min<size_t>(name.find_first_not_of('-'), 2));  // -flag or --flag
    const bool inline_value = name.find('=') != std::string::npos;
    name = name.substr(0, name.find('='));
    const bool split = SplitFlags().count(name) != 0;
    const bool value_follows = !inline_value && FlagTakesValue(name) && k + 1 < argc;
    if (!split) {
      out.push_back(argv[k]);
      if (value_follows) {
        out.push_back(argv[k + 1]);
      }
    }
    k += value_follows ? 1 : 0;
  }
  const uint32_t n = o.processes;
  auto share = [n](double x) { return absl::StrCat(x / n); };
  out.insert(out.end(),
             {"--worker", "--agents", absl::StrCat(Share(o.agents, n, i)), "--agent_index_base",
              absl::StrCat(first_agent), "--streams", absl::StrCat(Share(o.streams, n, i)),
              "--snapshot_rate", share(o.snapshot_rate), "--churn_rate", share(o.churn_rate),
              "--json_out", json_path});
  if (o.scenario == Scenario::kOpenRate) {
    out.insert(out.end(), {"--start_rate", share(o.start_rate), "--rate_step", share(o.rate_step),
                           "--max_rate", share(o.max_rate)});
  }
  if (!o.sources.empty()) {
    // Disjoint addresses when there are enough (each process its own ephemeral port space).
    size_t lo = 0;
    size_t hi = o.sources.size();
    if (o.sources.size() >= n) {
      lo = o.sources.size() * i / n;
      hi = o.sources.size() * (i + 1) / n;
    }
    std::vector<std::string> texts;
    for (size_t s = lo; s < hi; ++s) {
      texts.push_back(AddressText(o.sources[s]));
    }
    out.insert(out.end(), {"--sources", absl::StrJoin(texts, ",")});
  }
  if (!o.metrics_listen.empty()) {
    const size_t colon = o.metrics_listen.rfind(':');
    uint32_t port = 0;
    if (colon != std::string::npos && absl::SimpleAtoi(o.metrics_listen.substr(colon + 1), &port) &&
        port != 0) {
      port += i;  // a fixed port: one per worker, consecutive
    }
    out.insert(out.end(),
               {"--metrics_listen", absl::StrCat(o.metrics_listen.substr(0, colon), ":", port)});
  }
  if (o.gateway_pid > 0 && i == 0) {
    out.insert(out.end(), {"--gateway_pid", absl::StrCat(o.gateway_pid)});  // sampled once
  }
  return out;
}

bool Spawn(Worker& w, const std::vector<std::string>& args) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return false;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // dup2 clears CLOEXEC
  std::vector<char*> cargv;
  cargv.reserve(args.size() + 1);
  for (const std::string& a : args) {
    cargv.push_back(const_cast<char*>(a.c_str()));
  }
  cargv.push_back(nullptr);
  const int r = posix_spawn(&w.pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (r != 0) {
    close(fds[0]);
    runtime::LogEvent(runtime::LogLevel::kError, "worker_start_failed",
                      {runtime::Kv("error", std::generic_category().message(r))});
    return false;
  }
  w.out = fds[0];
  return true;
}

// The worker lines the coordinator merges (sim_runner.cc prints them): checked conversions, so a
// line that does not parse whole is passed over rather than read as zeros. (This abseil's
// string_view is its own type, not std::string_view.)
bool ParseMetricsPort(absl::string_view line, unsigned* port) {
  return absl::ConsumePrefix(&line, "agentsim: metrics port=") && absl::SimpleAtoi(line, port);
}

// "agentsim: agents-up <up>/<total> in <seconds> s"
bool ParseAgentsUp(absl::string_view line, uint64_t* up, double* secs) {
  if (!absl::ConsumePrefix(&line, "agentsim: agents-up ") || !absl::ConsumeSuffix(&line, " s")) {
    return false;
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(line, absl::ByAnyChar("/ "));
  uint64_t total = 0;
  return parts.size() == 4 && parts[2] == "in" && absl::SimpleAtoi(parts[0], up) &&
         absl::SimpleAtoi(parts[1], &total) && absl::SimpleAtod(parts[3], secs);
}

// "agentsim: load-done <seconds> s"
bool ParseLoadDone(absl::string_view line, double* secs) {
  return absl::ConsumePrefix(&line, "agentsim: load-done ") && absl::ConsumeSuffix(&line, " s") &&
         absl::SimpleAtod(line, secs);
}

// One line of a worker's stdout; the fleet-wide lines are printed once every worker has its.
void OnLine(std::vector<Worker>& workers, size_t i, const std::string& line) {
  Worker& w = workers[i];
  if (auto s = ParseStatusLine(line)) {
    w.status = *s;
    return;
  }
  uint64_t up = 0;
  double secs = 0;
  unsigned port = 0;
  if (ParseMetricsPort(line, &port)) {
    std::printf("agentsim: metrics port=%u worker=%zu\n", port, i);
  } else if (ParseAgentsUp(line, &up, &secs)) {
    w.agents_up = {{up, secs}};
    if (std::all_of(workers.begin(), workers.end(), [](const Worker& x) { return x.agents_up; })) {
      uint64_t total_up = 0;
      uint64_t total = 0;
      double slowest = 0;
      for (const Worker& x : workers) {
        total_up += x.agents_up->first;
        total += x.status.agents;
        slowest = std::max(slowest, x.agents_up->second);
      }
      std::printf("agentsim: agents-up %llu/%llu in %.3f s\n",
                  static_cast<unsigned long long>(total_up), static_cast<unsigned long long>(total),
                  slowest);
    }
  } else if (ParseLoadDone(line, &secs)) {
    w.load_done_s = secs;
    if (std::all_of(workers.begin(), workers.end(),
                    [](const Worker& x) { return x.load_done_s; })) {
      double slowest = 0;
      for (const Worker& x : workers) {
        slowest = std::max(slowest, *x.load_done_s);
      }
      std::printf("agentsim: load-done %.3f s\n", slowest);
    }
  }
  std::fflush(stdout);
}

// Reads what the workers write until every one has closed its stdout, drawing the progress line
// once a second and passing SIGINT/SIGTERM on (by PID) when this process gets one.
void Supervise(std::vector<Worker>& workers) {
  ProgressLine progress;
  const uint64_t start = runtime::MonotonicMs();
  uint64_t last_draw = start;
  bool forwarded = false;
  size_t open = workers.size();
  while (open > 0) {
    if (Interrupted() && !forwarded) {
      forwarded = true;
      for (const Worker& w : workers) {
        kill(w.pid, SIGINT);
      }
    }
    std::vector<pollfd> fds;
    std::vector<size_t> index;
    for (size_t i = 0; i < workers.size(); ++i) {
      if (workers[i].out >= 0) {
        fds.push_back({workers[i].out, POLLIN, 0});
        index.push_back(i);
      }
    }
    const int r = poll(fds.data(), fds.size(), 200);
    for (size_t k = 0; r > 0 && k < fds.size(); ++k) {
      if (fds[k].revents == 0) {
        continue;
      }
      Worker& w = workers[index[k]];
      char buf[4096];
      const ssize_t got = read(w.out, buf, sizeof(buf));
      if (got <= 0) {
        close(w.out);
        w.out = -1;
        --open;
        continue;
      }
      w.buffer.append(buf, static_cast<size_t>(got));
      for (size_t nl; (nl = w.buffer.find('\n')) != std::string::npos;) {
        OnLine(workers, index[k], w.buffer.substr(0, nl));
        w.buffer.erase(0, nl + 1);
      }
    }
    const uint64_t now = runtime::MonotonicMs();
    if (now - last_draw >= 1000) {
      last_draw = now;
      LiveStatus sum;
      for (const Worker& w : workers) {
        sum += w.status;
      }
      progress.Update(sum, now, static_cast<double>(now - start) / 1000.0);
    }
  }
  progress.Finish();
  for (Worker& w : workers) {
    int status = 0;
    while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
    }
    w.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
}

}  // namespace

int RunCoordinator(const Options& o, int argc, char** argv) {
  std::string tmpdir;
  if (o.json_out.empty()) {
    char dir[] = "/tmp/agentsim-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
      runtime::LogEvent(runtime::LogLevel::kError, "mkdtemp_failed",
                        {runtime::Kv("error", std::generic_category().message(errno))});
      return 3;
    }
    tmpdir = dir;
  }
  std::vector<Worker> workers(o.processes);
  uint32_t first_agent = o.agent_index_base;
  for (uint32_t i = 0; i < o.processes; ++i) {
    Worker& w = workers[i];
    // With --json_out the workers' own reports are kept beside the merged one.
    w.json_path = o.json_out.empty() ? absl::StrCat(tmpdir, "/worker-", i, ".json")
                                     : absl::StrCat(o.json_out, ".worker-", i, ".json");
    if (!Spawn(w, WorkerArgv(o, argc, argv, i, first_agent, w.json_path))) {
      for (uint32_t k = 0; k < i; ++k) {
        kill(workers[k].pid, SIGTERM);
      }
      workers.resize(i);  // wait for those started, then fail
      Supervise(workers);
      return 3;
    }
    w.status.agents = Share(o.agents, o.processes, i);
    first_agent += static_cast<uint32_t>(w.status.agents);
  }
  Supervise(workers);

  int failed = 0;
  std::vector<nlohmann::json> reports;
  for (size_t i = 0; i < workers.size(); ++i) {
    const Worker& w = workers[i];
    if (w.exit_status >= 2) {
      runtime::LogEvent(runtime::LogLevel::kError, "worker_failed",
                        {runtime::Kv("worker", i), runtime::Kv("pid", w.pid),
                         runtime::Kv("exit_status", w.exit_status)});
      failed = std::max(failed, w.exit_status >= 128 ? 3 : w.exit_status);
      continue;
    }
    std::ifstream in(w.json_path);
    nlohmann::json r = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (r.is_discarded()) {
      runtime::LogEvent(runtime::LogLevel::kError, "worker_report_unreadable",
                        {runtime::Kv("worker", i), runtime::Kv("path", w.json_path)});
      failed = 3;
      continue;
    }
    reports.push_back(std::move(r));
  }
  if (!tmpdir.empty()) {
    for (const Worker& w : workers) {
      unlink(w.json_path.c_str());
    }
    rmdir(tmpdir.c_str());
  }
  if (failed != 0) {
    return failed;
  }
  auto merged = MergeReports(reports);
  if (!merged.ok()) {
    runtime::LogEvent(runtime::LogLevel::kError, "report_merge_failed",
                      {runtime::Kv("error", merged.status().message())});
    return 3;
  }
  nlohmann::json& m = *merged;
  m["config"]["sources"] = o.sources.size();
  m["config"]["agent_index_base"] = o.agent_index_base;
  nlohmann::json detail = m["scenario_detail"];
  detail.erase("workers");
  const std::string summary =
      detail.empty() ? std::string()
                     : absl::StrCat(std::string(ScenarioName(o.scenario)), " (merged from ",
                                    o.processes, " processes): ", detail.dump());
  std::fputs(HumanSummary(m, summary).c_str(), stdout);
  std::fflush(stdout);
  if (!o.json_out.empty()) {
    std::ofstream out(o.json_out);
    out << m.dump(2) << "\n";
    if (!out) {
      runtime::LogEvent(runtime::LogLevel::kError, "report_write_failed",
                        {runtime::Kv("path", o.json_out)});
      return 2;
    }
  }
  return m["integrity_errors"]["total"].get<uint64_t>() == 0 ? 0 : 1;
}

}  // namespace camtunnel::agentsim
