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

TEST(StreamerSpec, RefusesAnAdminUrlTheHealthCheckerCouldNotUse) {
  const std::string path = ::testing::TempDir() + "/keys-admin.txt";
  std::ofstream(path) << "k1 " << std::string(64, 'a') << "\n";
  for (const char* bad : {"http://gw.example.com:9310", "https://127.0.0.1:9310",
                          "http://127.0.0.1", "http://127.0.0.1:9310/admin"}) {
    EXPECT_FALSE(ParseStreamerSpec("https://gw:8443,k1," + path + "," + bad).ok()) << bad;
  }
  EXPECT_TRUE(ParseStreamerSpec("https://gw:8443,k1," + path + ",http://[::1]:9310/").ok());
}

TEST(StreamerSpec, TakesAnOptionalFrontendAfterThePositionalFields) {
  const std::string path = ::testing::TempDir() + "/keys-frontend.txt";
  std::ofstream(path) << "k1 " << std::string(64, 'b') << "\n";
  auto with_admin = ParseStreamerSpec("https://gw:8443,k1," + path +
                                      ",http://127.0.0.1:9310,frontend=rtsp://10.0.0.1:8554");
  ASSERT_TRUE(with_admin.ok()) << with_admin.status();
  EXPECT_EQ(with_admin->admin_url, "http://127.0.0.1:9310");
  EXPECT_EQ(with_admin->frontend_url, "rtsp://10.0.0.1:8554");
  auto bare = ParseStreamerSpec("https://gw:8443,k1," + path + ",frontend=http://[::1]:8554");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->admin_url, "");
  EXPECT_EQ(bare->frontend_url, "http://[::1]:8554");
  // Older lines keep their meaning: no frontend.
  EXPECT_EQ(ParseStreamerSpec("https://gw:8443,k1," + path)->frontend_url, "");
  EXPECT_FALSE(ParseStreamerSpec("https://gw:8443,k1," + path + ",frontend=rtsp://gw/cam").ok());
  EXPECT_FALSE(ParseStreamerSpec("https://gw:8443,k1," + path + ",frontend=ftp://gw:21").ok());
  // Not among the first three fields.
  EXPECT_FALSE(ParseStreamerSpec("https://gw:8443,frontend=rtsp://gw:1," + path).ok());
}

TEST(StreamerPool, FindsAStreamerByUrl) {
  StreamerPool pool({S("https://a", 1), S("https://b", 2)}, 3600);
  EXPECT_EQ(pool.Find("https://b"), 1u);
  EXPECT_EQ(pool.Find("https://c"), std::nullopt);
  EXPECT_TRUE(pool.any_healthy());
  pool.SetHealthy(0, false);
  pool.SetHealthy(1, false);
  EXPECT_FALSE(pool.any_healthy());
}

}  // namespace
}  // namespace camtunnel::manager
