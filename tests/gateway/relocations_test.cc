// The relocation table (where the manager says an agent went): put, find, staleness after a new
// session here, expiry, the count cap, frontend validation, and the redirect URL per form.
#include "gateway/relocations.h"

#include <gtest/gtest.h>

#include <string>

namespace camtunnel::gateway {
namespace {

TEST(RelocationsTest, FindsWhereAnAgentWent) {
  Relocations r;
  ASSERT_EQ(r.Put("cam-1", "rtsp://10.0.0.2:8554", 1, 1000), Relocations::PutResult::kOk);
  EXPECT_EQ(r.Find("cam-1", 1, 2000), "10.0.0.2:8554");
  EXPECT_EQ(r.Find("cam-2", 0, 2000), std::nullopt);
}

TEST(RelocationsTest, KeepsOnlyTheAuthorityOfTheFrontend) {
  Relocations r;
  ASSERT_EQ(r.Put("cam-1", "http://gw2.example.com:8554/", 0, 0), Relocations::PutResult::kOk);
  EXPECT_EQ(r.Find("cam-1", 0, 1), "gw2.example.com:8554");
  ASSERT_EQ(r.Put("cam-1", "rtsp://[::1]:8554", 0, 0), Relocations::PutResult::kOk);
  EXPECT_EQ(r.Find("cam-1", 0, 1), "[::1]:8554");
}

TEST(RelocationsTest, RefusesFrontendsThatAreNotAnAuthority) {
  Relocations r;
  for (const char* bad : {"", "rtsp://", "ftp://gw2:21", "gw2:8554", "rtsp://gw2:8554/cam-1",
                          "rtsp://user@gw2:8554", "rtsp://gw2:8554\r\nX: y", "rtsp://gw 2"}) {
    EXPECT_EQ(r.Put("cam-1", bad, 0, 0), Relocations::PutResult::kBadFrontend) << bad;
  }
  EXPECT_EQ(r.Put("cam-1", "rtsp://" + std::string(300, 'a'), 0, 0),
            Relocations::PutResult::kBadFrontend);
  EXPECT_EQ(r.size(), 0u);
}

TEST(RelocationsTest, ANewSessionHereMakesTheRelocationStale) {
  Relocations r;
  ASSERT_EQ(r.Put("cam-1", "rtsp://gw2:8554", 3, 0), Relocations::PutResult::kOk);
  EXPECT_TRUE(r.Find("cam-1", 3, 1));
  EXPECT_EQ(r.Find("cam-1", 4, 2), std::nullopt);  // it came back to this gateway
  EXPECT_EQ(r.size(), 0u);
}

TEST(RelocationsTest, EntriesExpire) {
  Relocations r(10, /*ttl_ms=*/1000);
  ASSERT_EQ(r.Put("cam-1", "rtsp://gw2:8554", 0, 0), Relocations::PutResult::kOk);
  EXPECT_TRUE(r.Find("cam-1", 0, 999));
  EXPECT_EQ(r.Find("cam-1", 0, 1000), std::nullopt);
  EXPECT_EQ(r.size(), 0u);
}

TEST(RelocationsTest, CapacityIsBoundedAndExpiredEntriesMakeRoom) {
  Relocations r(2, /*ttl_ms=*/1000);
  ASSERT_EQ(r.Put("cam-1", "rtsp://gw2:8554", 0, 0), Relocations::PutResult::kOk);
  ASSERT_EQ(r.Put("cam-2", "rtsp://gw2:8554", 0, 500), Relocations::PutResult::kOk);
  EXPECT_EQ(r.Put("cam-3", "rtsp://gw2:8554", 0, 600), Relocations::PutResult::kFull);
  // Rewriting a present entry is always possible.
  EXPECT_EQ(r.Put("cam-2", "rtsp://gw3:8554", 0, 600), Relocations::PutResult::kOk);
  // cam-1 has expired by 1000: it makes room.
  EXPECT_EQ(r.Put("cam-3", "rtsp://gw2:8554", 0, 1000), Relocations::PutResult::kOk);
  EXPECT_EQ(r.size(), 2u);
  EXPECT_TRUE(r.Erase("cam-3"));
  EXPECT_FALSE(r.Erase("cam-3"));
}

std::optional<std::string> Redirect(const std::string& text) {
  proto::RequestHead head;
  EXPECT_EQ(proto::ParseRequestHead(text, &head), proto::HeadResult::kComplete) << text;
  RouteDecision d = RouteFirstRequest(head, FrontendRouteConfig{"localhost"});
  EXPECT_EQ(d.error, FrontendError::kOk) << text;
  return RelocatedUrl(d.route, head, "10.0.0.2:8555");
}

TEST(RelocationsTest, RedirectKeepsThePathOfPathForms) {
  EXPECT_EQ(
      Redirect("DESCRIBE rtsp://127.0.0.1:8554/cam-1/stream1?a=b RTSP/1.0\r\nCSeq: 2\r\n\r\n"),
      "rtsp://10.0.0.2:8555/cam-1/stream1?a=b");
  EXPECT_EQ(Redirect("GET /cam-1/snap.jpg HTTP/1.1\r\nHost: 127.0.0.1:8554\r\n\r\n"),
            "http://10.0.0.2:8555/cam-1/snap.jpg");
}

TEST(RelocationsTest, RedirectTurnsHostFormsIntoPathForms) {
  EXPECT_EQ(Redirect("OPTIONS rtsp://cam-1.localhost:8554/stream1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            "rtsp://10.0.0.2:8555/cam-1/stream1");
  EXPECT_EQ(Redirect("GET /snap.jpg HTTP/1.1\r\nHost: cam-1.localhost:8554\r\n\r\n"),
            "http://10.0.0.2:8555/cam-1/snap.jpg");
}

TEST(RelocationsTest, NoRedirectForConnect) {
  EXPECT_EQ(Redirect("CONNECT cam-1:rtsp HTTP/1.1\r\nHost: cam-1:rtsp\r\n\r\n"), std::nullopt);
}

}  // namespace
}  // namespace camtunnel::gateway
