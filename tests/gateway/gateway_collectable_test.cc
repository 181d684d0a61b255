// The gateway's Collectable: shard cells summed at scrape time, serialized by prometheus-cpp's
// TextSerializer, histogram buckets cumulative; and the scrape around it (build info, process).
#include "gateway/gateway_collectable.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gateway/gateway_metrics.h"
#include "metrics/exposition.h"

namespace camtunnel::gateway {
namespace {

// Sample lines of Prometheus text by "name{labels}" as written.
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
  }
  return out;
}

// Buckets of histogram `name` as {upper bound: cumulative count}, from the text.
std::map<double, double> Buckets(const std::map<std::string, double>& samples,
                                 const std::string& name) {
  const std::string prefix = name + "_bucket{le=\"";
  std::map<double, double> out;
  for (const auto& [key, value] : samples) {
    if (key.rfind(prefix, 0) == 0) {
      out[std::strtod(key.c_str() + prefix.size(), nullptr)] = value;
    }
  }
  return out;
}

std::string Text(const GatewayCollectable& c) { return metrics::RenderText(c.Collect()); }

class GatewayCollectableTest : public ::testing::Test {
 protected:
  ShardMetrics a_;
  ShardMetrics b_;
};

TEST_F(GatewayCollectableTest, SumsCountersAndGaugesOfEveryShard) {
  a_.CountControl(AgentResult::kAccepted);
  a_.CountControl(AgentResult::kAccepted);
  b_.CountControl(AgentResult::kAccepted);
  b_.CountData(AgentResult::kBadProof);
  a_.CountOpen(OpenResult::kOk);
  b_.CountOpen(OpenResult::kOk);
  b_.CountOpen(OpenResult::kUnknownAgent);
  a_.CountFrontend(RequestKind::kConnect, 404);
  b_.CountFrontend(RequestKind::kConnect, 404);
  a_.bytes_to_camera.Add(1000);
  b_.bytes_to_camera.Add(234);
  a_.agents_connected.Add(1);
  b_.agents_connected.Add(4);
  b_.tunnels_open.Add(2);
  a_.handoffs_refused.Add(3);

  const auto s = Samples(Text(GatewayCollectable({&a_, &b_}, GatewayFacts{})));
  EXPECT_EQ(s.at("camtunnel_agent_connections_total{kind=\"control\",result=\"accepted\"}"), 3);
  EXPECT_EQ(s.at("camtunnel_agent_connections_total{kind=\"data\",result=\"bad_proof\"}"), 1);
  EXPECT_EQ(s.at("camtunnel_agent_connections_total{kind=\"data\",result=\"accepted\"}"), 0);
  EXPECT_EQ(s.at("camtunnel_tunnels_opened_total{result=\"ok\"}"), 2);
  EXPECT_EQ(s.at("camtunnel_tunnels_opened_total{result=\"unknown_agent\"}"), 1);
  EXPECT_EQ(s.at("camtunnel_frontend_requests_total{protocol=\"connect\",status=\"404\"}"), 2);
  EXPECT_EQ(s.at("camtunnel_relay_bytes_total{direction=\"to_camera\"}"), 1234);
  EXPECT_EQ(s.at("camtunnel_relay_bytes_total{direction=\"to_client\"}"), 0);
  EXPECT_EQ(s.at("camtunnel_agents_connected"), 5);
  EXPECT_EQ(s.at("camtunnel_tunnels_open"), 2);
  EXPECT_EQ(s.at("camtunnel_shard_handoffs_total{result=\"queue_full\"}"), 3);
}

TEST_F(GatewayCollectableTest, PerShardGaugeKeepsTheShardIndex) {
  a_.agents_connected.Add(1);
  b_.agents_connected.Add(4);
  const auto s = Samples(Text(GatewayCollectable({&a_, &b_}, GatewayFacts{})));
  EXPECT_EQ(s.at("camtunnel_shard_agents_connected{shard=\"0\"}"), 1);
  EXPECT_EQ(s.at("camtunnel_shard_agents_connected{shard=\"1\"}"), 4);
}

TEST_F(GatewayCollectableTest, HistogramBucketsAreCumulativeOverShards) {
  a_.tunnel_open_seconds.Observe(0.0003);  // le 0.0005
  a_.tunnel_open_seconds.Observe(0.003);   // le 0.005
  b_.tunnel_open_seconds.Observe(0.003);   // le 0.005
  b_.tunnel_open_seconds.Observe(0.2);     // le 0.25
  b_.tunnel_open_seconds.Observe(10);      // +Inf

  const auto s = Samples(Text(GatewayCollectable({&a_, &b_}, GatewayFacts{})));
  const auto buckets = Buckets(s, "camtunnel_tunnel_open_seconds");
  ASSERT_EQ(buckets.size(), kLatencyBounds.size() + 1);
  const std::map<double, double> want = {{0.0005, 1},
                                         {0.001, 1},
                                         {0.0025, 1},
                                         {0.005, 3},
                                         {0.01, 3},
                                         {0.025, 3},
                                         {0.05, 3},
                                         {0.1, 3},
                                         {0.25, 4},
                                         {0.5, 4},
                                         {1, 4},
                                         {5, 4},
                                         {std::numeric_limits<double>::infinity(), 5}};
  EXPECT_EQ(buckets, want);
  EXPECT_EQ(s.at("camtunnel_tunnel_open_seconds_count"), 5);
  EXPECT_NEAR(s.at("camtunnel_tunnel_open_seconds_sum"), 10.2063, 1e-9);
  // The other histogram saw nothing: every bucket 0, still all present.
  const auto idle = Buckets(s, "camtunnel_handshake_seconds");
  ASSERT_EQ(idle.size(), kLatencyBounds.size() + 1);
  for (const auto& [le, n] : idle) {
    EXPECT_EQ(n, 0) << le;
  }
}

TEST_F(GatewayCollectableTest, FactsAreTheGatheredGauges) {
  GatewayFacts facts;
  facts.shards = 2;
  facts.shard_connections = 7;
  facts.buffers_capacity = 2048;
  facts.buffer_bytes = 16384;
  facts.draining = 1;
  facts.log_lines_suppressed = 9;
  const auto s = Samples(Text(GatewayCollectable({&a_, &b_}, facts)));
  EXPECT_EQ(s.at("camtunnel_shards"), 2);
  EXPECT_EQ(s.at("camtunnel_shard_connections"), 7);
  EXPECT_EQ(s.at("camtunnel_buffers_capacity"), 2048);
  EXPECT_EQ(s.at("camtunnel_buffer_size_bytes"), 16384);
  EXPECT_EQ(s.at("camtunnel_draining"), 1);
  EXPECT_EQ(s.at("camtunnel_log_lines_suppressed_total"), 9);
}

TEST_F(GatewayCollectableTest, ReadsCellsAgainOnEveryCollect) {
  const GatewayCollectable cells({&a_, &b_}, GatewayFacts{});
  EXPECT_EQ(Samples(Text(cells)).at("camtunnel_heartbeat_timeouts_total"), 0);
  b_.heartbeat_timeouts.Add(2);
  EXPECT_EQ(Samples(Text(cells)).at("camtunnel_heartbeat_timeouts_total"), 2);
}

TEST_F(GatewayCollectableTest, ScrapeAddsBuildInfoAndProcessFamiliesOnce) {
  a_.agents_connected.Add(1);
  const std::string text = RenderMetrics({&a_, &b_}, GatewayFacts{});
  std::multiset<std::string> types;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      types.insert(line.substr(7, line.find(' ', 7) - 7));
    }
  }
  for (const std::string& name : types) {
    EXPECT_EQ(types.count(name), 1u) << name;
  }
  const auto s = Samples(text);
  EXPECT_EQ(s.at("camtunnel_agents_connected"), 1);
  EXPECT_EQ(
      s.at(std::string("camtunnel_build_info{openssl=\"") +
           OpenSSL_version(OPENSSL_VERSION_STRING) + "\",version=\"" + CAMTUNNEL_VERSION + "\"}"),
      1);
  EXPECT_GT(s.at("camtunnel_process_open_fds"), 0);
  EXPECT_GT(s.at("camtunnel_process_resident_memory_bytes"), 0);
  EXPECT_GT(s.at("camtunnel_process_start_time_seconds"), 0);
  EXPECT_TRUE(types.contains("camtunnel_process_cpu_seconds_total"));
}

}  // namespace
}  // namespace camtunnel::gateway
