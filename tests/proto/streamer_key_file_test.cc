// The streamer keys file (proto/streamer_key_file.h): the gateway's rules, shared by the manager
// and agentsim.
#include "proto/streamer_key_file.h"

#include <gtest/gtest.h>

#include <string>

namespace camtunnel::proto {
namespace {

TEST(StreamerKeyFileTest, KeepsEveryKeyInFileOrder) {
  std::string error;
  auto keys = ParseStreamerKeys(
      "# rotated monthly\n\nk2 " + std::string(64, 'b') + "\r\n  k1   " + std::string(64, 'A'),
      &error);
  ASSERT_TRUE(keys) << error;
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].key_id, "k2");
  EXPECT_EQ((*keys)[0].key, std::vector<uint8_t>(32, 0xbb));
  EXPECT_EQ((*keys)[1].key_id, "k1");
  EXPECT_EQ((*keys)[1].key, std::vector<uint8_t>(32, 0xaa));
}

TEST(StreamerKeyFileTest, NamesTheFirstBadLineWithoutQuotingIt) {
  std::string error;
  const std::string secret = std::string(62, 'c');
  EXPECT_FALSE(ParseStreamerKeys("k1 " + std::string(64, 'a') + "\nk2 " + secret + "\n", &error));
  EXPECT_EQ(error, "line 2: key must be 32 bytes (64 hex chars)");
  EXPECT_FALSE(ParseStreamerKeys("bad/id " + std::string(64, 'a'), &error));
  EXPECT_EQ(error, "line 1: want '<key id> <64 hex chars>'");
  EXPECT_FALSE(ParseStreamerKeys("k1 " + std::string(64, 'a') + " extra", &error));
  EXPECT_EQ(error, "line 1: want '<key id> <64 hex chars>'");
}

TEST(StreamerKeyFileTest, RefusesAFileWithoutKeys) {
  std::string error;
  EXPECT_FALSE(ParseStreamerKeys("# nothing yet\n\n", &error));
  EXPECT_EQ(error, "no keys");
  EXPECT_FALSE(ParseStreamerKeys("", &error));
}

}  // namespace
}  // namespace camtunnel::proto
