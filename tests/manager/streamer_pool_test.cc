// Assignment: healthy Streamers by load, unhealthy last, the operator's choice first, keys
// derived exactly as a gateway derives them.
#include "manager/streamer_pool.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

namespace camtunnel::manager {
namespace {

StreamerConfig S(std::string url, uint8_t key) {
  return {.url = std::move(url), .key_id = "k1", .streamer_key = std::vector<uint8_t>(32, key)};
}

TEST(StreamerPool, OrdersHealthyByLoadThenUnhealthy) {
  StreamerPool pool({S("https://a", 1), S("https://b", 2), S("https://c", 3)}, 3600);
  pool.SetHealthy(1, false);
  std::map<std::string, size_t> load{{"https://a", 5}, {"https://b", 0}, {"https://c", 1}};
  auto list = pool.Assign("cam-1", 1000, [&](std::string_view u) { return load[std::string(u)]; });
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].url, "https://c");
  EXPECT_EQ(list[1].url, "https://a");
  EXPECT_EQ(list[2].url, "https://b");
}

TEST(StreamerPool, PutsPreferredFirstWhenHealthy) {
  StreamerPool pool({S("https://a", 1), S("https://b", 2)}, 3600);
  auto list = pool.Assign(
      "cam-1", 1000, [](std::string_view) { return 0; }, "https://b");
  EXPECT_EQ(list[0].url, "https://b");
  pool.SetHealthy(1, false);
  list = pool.Assign(
      "cam-1", 1000, [](std::string_view) { return 0; }, "https://b");
  EXPECT_EQ(list[0].url, "https://a");
}

TEST(StreamerPool, DerivesTheGatewaysKeyWithHourlyExpiry) {
  StreamerPool pool({S("https://a", 7)}, 7200);
  auto list = pool.Assign("cam-1", 1000, [](std::string_view) { return 0; });
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].key_ref.expiry, 10800u);  // 1000 + 7200 rounded up to the hour
  EXPECT_EQ(list[0].agent_key,
            proto::DeriveAgentKey(std::vector<uint8_t>(32, 7), "cam-1", list[0].key_ref));
}

TEST(StreamerSpec, ReadsTheKeyFromAGatewayKeysFile) {
  const std::string path = ::testing::TempDir() + "/keys.txt";
  std::ofstream(path) << "# comment\nk0 " << std::string(64, '1') << "\nk1 " << std::string(64, 'a')
                      << "\n";
  auto spec = ParseStreamerSpec("https://gw:8443,k1," + path + ",http://127.0.0.1:9310");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->streamer_key, std::vector<uint8_t>(32, 0xaa));
  EXPECT_EQ(spec->admin_url, "http://127.0.0.1:9310");
  EXPECT_FALSE(ParseStreamerSpec("https://gw,k9," + path).ok());
  EXPECT_FALSE(ParseStreamerSpec("ftp://gw,k1," + path).ok());
  EXPECT_FALSE(ParseStreamerSpec("https://gw,k1").ok());
}

}  // namespace
}  // namespace camtunnel::manager
