#include "agentsim/sim_runner.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <system_error>

#include "agentsim/fleet.h"
#include "agentsim/live_status.h"
#include "agentsim/load_driver.h"
#include "agentsim/managed_fleet.h"
#include "agentsim/metrics_server.h"
#include "agentsim/proc_sampler.h"
#include "agentsim/progress_line.h"
#include "agentsim/scenario_policy.h"
#include "agentsim/sim_metrics.h"
#include "agentsim/sim_report.h"
#include "agentsim/streamer_key_file.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "runtime/tls_context.h"

namespace camtunnel::agentsim {
namespace {

std::atomic<bool> g_interrupted{false};

// Keys handed to simulated agents stay valid for a day: longer than any bounded run.
constexpr uint64_t kKeyValidityS = 86400;
constexpr uint64_t kStopGraceMs = 5000;
constexpr uint64_t kShutdownMs = 3000;

LiveStatus CurrentStatus(const SimStats& s, const Fleet& fleet, const LoadDriver& driver) {
  LiveStatus l;
  l.up = fleet.up();
  l.agents = fleet.size();
  l.streams = s.media.rtsp_active;
  l.opens = s.media.opens_total();
  l.errors = s.media.opens_failed() + s.media.integrity.errors() + driver.LiveIntegrity().errors();
  l.bytes = s.media.bytes_received;
  return l;
}

// The once-a-second bookkeeping: progress line (or, in a worker, the status line for the
// coordinator) and process samples.
class SecondTicker {
 public:
  SecondTicker(SimContext& ctx, Fleet& fleet, LoadDriver& driver, ProgressLine& progress,
               ProcSampler& self, ProcSampler* gateway)
      : ctx_(ctx),
        fleet_(fleet),
        driver_(driver),
        progress_(progress),
        self_(self),
        gateway_(gateway) {
    timer_.set_callback([this] { Tick(); });
    start_ms_ = ctx.shard.now_ms();
    self_.Sample(start_ms_);
    if (gateway_ != nullptr) {
      gateway_->Sample(start_ms_);
    }
    ctx.shard.timers().Arm(timer_, start_ms_, 1000);
  }

 private:
  void Tick() {
    const uint64_t now = ctx_.shard.now_ms();
    const LiveStatus status = CurrentStatus(ctx_.stats, fleet_, driver_);
    if (ctx_.options.worker) {
      std::fputs(FormatStatusLine(status).c_str(), stdout);
      std::fflush(stdout);
    } else {
      progress_.Update(status, now, static_cast<double>(now - start_ms_) / 1000.0);
    }
    self_.Sample(now);
    if (gateway_ != nullptr && gateway_->alive()) {
      if (auto s = gateway_->Sample(now)) {
        gateway_->Keep(*s);
      }
    }
    ctx_.shard.timers().Arm(timer_, now, 1000);
  }

  SimContext& ctx_;
  Fleet& fleet_;
  LoadDriver& driver_;
  ProgressLine& progress_;
  ProcSampler& self_;
  ProcSampler* gateway_;
  uint64_t start_ms_ = 0;
  runtime::Timer timer_;
};

}  // namespace

bool Interrupted() { return g_interrupted.load(std::memory_order_relaxed); }

void RequestInterrupt() { g_interrupted.store(true, std::memory_order_relaxed); }

int RunSimulation(const Options& o) {
  std::optional<StreamerKey> key;
  std::vector<uint8_t> factory_master;
  UrlEndpoints endpoints;
  const UrlEndpoint* activation = nullptr;
  runtime::SslCtxPtr manager_tls;
  if (o.managed()) {
    auto master = LoadFactoryMaster(o.factory_master_file);
    auto url = endpoints.Find(o.manager_url);
    auto ctx = runtime::CreateClientContext(o.manager_ca_file, o.insecure);
    for (const auto& [option, status] :
         {std::pair{"--factory_master_file", master.status()},
          std::pair{"--manager_url", url.status()}, std::pair{"--manager_ca_file", ctx.status()}}) {
      if (!status.ok()) {
        runtime::LogEvent(runtime::LogLevel::kError, "config_error",
                          {runtime::Kv("option", option), runtime::Kv("error", status.message())});
        return 2;
      }
    }
    factory_master = std::move(*master);
    activation = *url;
    manager_tls = std::move(*ctx);
  } else {
    auto loaded = LoadStreamerKey(o.streamer_keys_file, o.key_id);
    if (!loaded.ok()) {
      runtime::LogEvent(runtime::LogLevel::kError, "config_error",
                        {runtime::Kv("option", "--streamer_keys"),
                         runtime::Kv("error", loaded.status().message())});
      return 2;
    }
    key = std::move(*loaded);
  }
  runtime::SslCtxPtr tls;
  if (o.tls) {
    auto ctx = runtime::CreateClientContext(o.ca_file, o.insecure);
    if (!ctx.ok()) {
      runtime::LogEvent(
          runtime::LogLevel::kError, "config_error",
          {runtime::Kv("option", "--ca"), runtime::Kv("error", ctx.status().message())});
      return 2;
    }
    tls = std::move(*ctx);
  }
  const SnapshotImage snapshot = MakeSnapshotImage(o.snapshot_bytes);

  runtime::Shard shard;
  runtime::ShardOptions shard_options;
  // Every simulated TLS connection is an SSL object fed from these buffers; a media session at
  // a high bitrate needs a few in flight. 4096 x 16 KiB = 64 MiB, mapped once.
  shard_options.buffer_count = 4096;
  if (int r = shard.Init(shard_options); r < 0) {
    runtime::LogEvent(runtime::LogLevel::kError, "io_uring_setup_failed",
                      {runtime::Kv("error", std::generic_category().message(-r))});
    return 3;
  }
  SimStats stats;
  TlsSessions tls_sessions;
  SimContext ctx{o, shard, tls.get(), stats, snapshot};
  if (o.tls && o.tls_resume) {
    ctx.tls_sessions = &tls_sessions;
  }
  ctx.manager_tls_ctx = manager_tls.get();
  ctx.endpoints = &endpoints;
  const uint64_t expiry = runtime::WallMs() / 1000 + kKeyValidityS;
  auto fleet = std::make_unique<Fleet>(ctx, key ? &*key : nullptr, expiry);
  std::unique_ptr<ManagedFleet> managed;
  if (o.managed()) {
    managed = std::make_unique<ManagedFleet>(ctx, *fleet, *activation, factory_master);
  }
  LoadDriver driver(ctx, *fleet);
  std::unique_ptr<ScenarioPolicy> policy = MakePolicy(o);
  ScenarioEnv env{ctx, *fleet, driver, 0};

  std::unique_ptr<MetricsServer> metrics;
  if (!o.metrics_listen.empty()) {
    auto m = MetricsServer::Open(shard, o.metrics_listen, [&] {
      return RenderMetrics(stats, *fleet, driver.LiveIntegrity(), o.managed());
    });
    if (!m.ok()) {
      runtime::LogEvent(
          runtime::LogLevel::kError, "config_error",
          {runtime::Kv("option", "--metrics_listen"), runtime::Kv("error", m.status().message())});
      return 2;
    }
    metrics = std::move(*m);
    std::printf("agentsim: metrics port=%u\n", metrics->port());
    std::fflush(stdout);
  }

  ProgressLine progress;
  ProcSampler self(getpid());
  std::unique_ptr<ProcSampler> gateway;
  if (o.gateway_pid > 0) {
    gateway = std::make_unique<ProcSampler>(o.gateway_pid);
  }
  SecondTicker ticker(ctx, *fleet, driver, progress, self, gateway.get());

  // 1. Connect.
  const double cpu_before_connect = ProcessCpuSeconds(getpid()).value_or(0);
  const uint64_t t0 = runtime::MonotonicMs();
  fleet->Start();
  if (managed) {
    managed->Start();  // each agent's gateway connection starts at its first ASSIGN
  }
  shard.RunUntil([&] { return fleet->complete() || Interrupted(); },
                 static_cast<uint64_t>(o.connect_timeout_s * 1000));
  std::optional<double> connect_all_s;
  if (fleet->first_complete_ms() != 0) {
    connect_all_s = static_cast<double>(fleet->first_complete_ms() - t0) / 1000.0;
  }
  std::printf("agentsim: agents-up %zu/%zu in %.3f s\n", fleet->up(), fleet->size(),
              static_cast<double>(runtime::MonotonicMs() - t0) / 1000.0);
  std::fflush(stdout);

  const double connect_cpu_s = ProcessCpuSeconds(getpid()).value_or(0) - cpu_before_connect;

  // 2. Load. The agents' own CPU from here on is what an idle or loaded fleet costs.
  self.ResetSummary();
  if (gateway) {
    gateway->ResetSummary();
  }
  const uint64_t load_start = shard.now_ms();
  env.load_start_ms = load_start;
  driver.Start();
  policy->Begin(env);
  runtime::Timer policy_tick;
  policy_tick.set_callback([&] {
    policy->Tick(env, shard.now_ms());
    shard.timers().Arm(policy_tick, shard.now_ms(), ScenarioPolicy::kTickMs);
  });
  shard.timers().Arm(policy_tick, load_start, ScenarioPolicy::kTickMs);
  shard.RunUntil([&] { return Interrupted() || policy->Done(env); },
                 static_cast<uint64_t>(o.duration_s * 1000));
  shard.timers().Cancel(policy_tick);
  const double load_s = static_cast<double>(shard.now_ms() - load_start) / 1000.0;
  const size_t up_at_end = fleet->up();
  const size_t links_at_end = managed ? managed->linked() : 0;
  std::printf("agentsim: load-done %.3f s\n", load_s);
  std::fflush(stdout);

  // 3. Stop: sessions first (their TEARDOWN answers prove the tail arrived), then agents.
  driver.Stop();
  shard.RunUntil([&] { return driver.live() == 0; }, kStopGraceMs);
  ctx.stopping = true;
  if (managed) {
    managed->Stop();
  }
  fleet->Stop();
  shard.RunUntil([&] { return shard.live_streams() == 0; }, kShutdownMs);
  progress.Finish();
  ReportInput in{o,         stats,         *fleet,        connect_all_s,       load_s,
                 up_at_end, connect_cpu_s, Interrupted(), policy->Report(env), policy->Summary(env),
                 &self,     gateway.get()};
  if (managed) {
    in.managed_start_ms = managed->start_ms();
    in.managed_all_linked_ms = managed->all_linked_ms();
    in.manager_links_at_end_of_load = links_at_end;
  }
  const nlohmann::json report = BuildReport(in);
  shard.Shutdown(kShutdownMs);

  // 4. Report.
  std::fputs(HumanSummary(report, in.scenario_summary).c_str(), stdout);
  std::fflush(stdout);
  if (!o.json_out.empty()) {
    std::ofstream out(o.json_out);
    out << report.dump(2) << "\n";
    if (!out) {
      runtime::LogEvent(runtime::LogLevel::kError, "report_write_failed",
                        {runtime::Kv("path", o.json_out)});
      return 2;
    }
  }
  return stats.media.integrity.errors() == 0 ? 0 : 1;
}

}  // namespace camtunnel::agentsim
