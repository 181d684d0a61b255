#include "agentsim/managed_fleet.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "proto/encoding.h"
#include "proto/manager_link.h"

namespace camtunnel::agentsim {
namespace {
constexpr uint64_t kPumpMs = 10;
}  // namespace

absl::StatusOr<std::vector<uint8_t>> LoadFactoryMaster(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError("cannot read " + path);
  }
  std::stringstream text;
  text << in.rdbuf();
  const std::string content = text.str();
  const absl::string_view hex = absl::StripAsciiWhitespace(content);
  auto bytes = proto::HexDecode(std::string_view(hex.data(), hex.size()));
  if (!bytes || bytes->size() != 32) {
    return absl::InvalidArgumentError(path + ": want 64 hex digits (a 32-byte key)");
  }
  return std::move(*bytes);
}

ManagedFleet::ManagedFleet(SimContext& ctx, Fleet& fleet, const UrlEndpoint& activation,
                           std::span<const uint8_t> factory_master)
    : ctx_(ctx), fleet_(fleet) {
  agents_.reserve(fleet.size());
  for (size_t i = 0; i < fleet.size(); ++i) {
    SimAgent& agent = fleet.agent(i);
    agents_.push_back(std::make_unique<ManagedSimAgent>(
        ctx, *this, agent, activation, proto::FactorySecret(factory_master, agent.identity().id)));
  }
  pump_timer_.set_callback([this] { Pump(); });
}

ManagedFleet::~ManagedFleet() = default;

void ManagedFleet::Start() {
  start_ms_ = ctx_.shard.now_ms();
  budget_.Start(start_ms_);
  for (auto& a : agents_) {
    waiting_.push_back(a.get());
  }
  Pump();
}

void ManagedFleet::Stop() {
  waiting_.clear();
  ctx_.shard.timers().Cancel(pump_timer_);
  for (auto& a : agents_) {
    a->Stop();
  }
}

size_t ManagedFleet::linked() const { return ctx_.stats.managed.links_up; }

void ManagedFleet::Pump() {
  const Options& o = ctx_.options;
  const uint64_t now = ctx_.shard.now_ms();
  while (!waiting_.empty() && in_flight_ < o.connect_concurrency && !ctx_.stopping) {
    if (!budget_.Take(o.connect_rate, now)) {
      break;
    }
    ManagedSimAgent* a = waiting_.front();
    waiting_.pop_front();
    ++in_flight_;
    a->Start();
  }
  if (!waiting_.empty() && o.connect_rate > 0 && !pump_timer_.armed()) {
    ctx_.shard.timers().Arm(pump_timer_, now, kPumpMs);
  }
}

void ManagedFleet::OnFirstActivationEnded() {
  --in_flight_;
  if (!waiting_.empty()) {
    ctx_.shard.Defer([this] { Pump(); });
  }
}

void ManagedFleet::OnFirstLink() {
  if (++ever_linked_ == agents_.size()) {
    all_linked_ms_ = ctx_.shard.now_ms();
  }
}

}  // namespace camtunnel::agentsim
