// The client->camera stream of a routed frontend connection: real ffmpeg / VLC sessions with
// interleaved RTCP, path-form rewriting of every head, HTTP keep-alive and chunked bodies, the
// refusals, and independence from how the stream is split.
#include "gateway/request_filter.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace camtunnel::gateway {
namespace {

using namespace std::string_literals;

constexpr char kCamera[] = "127.0.0.1:554";

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

FrontendRoute RouteOf(const std::string& first) {
  proto::RequestHead head;
  EXPECT_EQ(proto::ParseRequestHead(first, &head), proto::HeadResult::kComplete) << first;
  RouteDecision decision = RouteFirstRequest(head, FrontendRouteConfig{"localhost"});
  EXPECT_EQ(decision.error, FrontendError::kOk) << first;
  return decision.route;
}

struct Outcome {
  FrontendError error = FrontendError::kOk;
  std::string out;
  std::string cseq;
  bool operator==(const Outcome&) const = default;
};

// Feeds `input` in pieces of the given sizes (the rest in one last piece); the route is taken
// from the input's first head.
Outcome FeedSplit(const std::string& input, const std::vector<size_t>& sizes,
                  const FrontendRoute& route) {
  RequestFilter stream(route, FrontendRouteConfig{"localhost"}, kCamera);
  Outcome outcome;
  size_t pos = 0;
  for (size_t size : sizes) {
    size = std::min(size, input.size() - pos);
    outcome.error = stream.Feed(Bytes(std::string_view(input).substr(pos, size)), &outcome.out);
    pos += size;
  }
  outcome.error = stream.Feed(Bytes(std::string_view(input).substr(pos)), &outcome.out);
  outcome.cseq = std::string(stream.error_cseq());
  return outcome;
}

Outcome FeedAll(const std::string& input, const FrontendRoute& route) {
  return FeedSplit(input, {}, route);
}

Outcome FeedAll(const std::string& input) { return FeedAll(input, RouteOf(input)); }

// Every way of splitting in two, byte by byte, and 200 random chunkings give the one-shot result.
void ExpectSplitInvariant(const std::string& input) {
  const FrontendRoute route = RouteOf(input);
  const Outcome whole = FeedAll(input, route);
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    ASSERT_EQ(FeedSplit(input, {cut}, route), whole) << "cut at " << cut;
  }
  ASSERT_EQ(FeedSplit(input, std::vector<size_t>(input.size(), 1), route), whole);
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::vector<size_t> sizes;
    for (size_t total = 0; total < input.size();) {
      size_t size = std::uniform_int_distribution<size_t>(0, 64)(rng);
      sizes.push_back(size);
      total += size;
    }
    ASSERT_EQ(FeedSplit(input, sizes, route), whole) << "round " << round;
  }
}

std::string Replace(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// An RTCP receiver report + SDES as ffmpeg sends it on interleaved channel 1 (28+4 bytes).
std::string InterleavedRtcp() {
  std::string payload =
      "\x81\xc9\x00\x07\x5e\x2c\x11\x90\x12\x34\x56\x78\x00\x00\x00\x00\x00\x00\x1a\x0b"
      "\x00\x00\x00\x00\x00\x00\x00\x00"s;
  return "$\x01\x00"s + static_cast<char>(payload.size()) + payload;
}

// ffmpeg 5.1 (Lavf59.27.100) against a path-form URL. The camera's Content-Base is its own URL
// (rtsp://127.0.0.1:554/stream1/), so SETUP/PLAY/keepalive/TEARDOWN already carry it.
std::string FfmpegPathSession() {
  return "OPTIONS rtsp://127.0.0.1:8554/cam-1/stream1 RTSP/1.0\r\n"
         "CSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n"
         "DESCRIBE rtsp://127.0.0.1:8554/cam-1/stream1 RTSP/1.0\r\n"
         "Accept: application/sdp\r\nCSeq: 2\r\nUser-Agent: Lavf59.27.100\r\n\r\n"
         "SETUP rtsp://127.0.0.1:554/stream1/trackID=1 RTSP/1.0\r\n"
         "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 3\r\n"
         "User-Agent: Lavf59.27.100\r\n\r\n"
         "PLAY rtsp://127.0.0.1:554/stream1/ RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 4\r\n"
         "User-Agent: Lavf59.27.100\r\nSession: 5e2c1190\r\n\r\n" +
         InterleavedRtcp() +
         "GET_PARAMETER rtsp://127.0.0.1:554/stream1/ RTSP/1.0\r\nCSeq: 5\r\n"
         "User-Agent: Lavf59.27.100\r\nSession: 5e2c1190\r\n\r\n" +
         InterleavedRtcp() + InterleavedRtcp() +
         "TEARDOWN rtsp://127.0.0.1:554/stream1/ RTSP/1.0\r\nCSeq: 6\r\n"
         "User-Agent: Lavf59.27.100\r\nSession: 5e2c1190\r\n\r\n";
}

// The same client when the camera sends no absolute Content-Base: ffmpeg builds every URL from
// the gateway URL, so every head must be rewritten.
std::string FfmpegPathSessionWithGatewayUrls() {
  return "DESCRIBE rtsp://127.0.0.1:8554/cam-1/stream1 RTSP/1.0\r\n"
         "Accept: application/sdp\r\nCSeq: 2\r\nUser-Agent: Lavf59.27.100\r\n\r\n"
         "SETUP rtsp://127.0.0.1:8554/cam-1/stream1/trackID=1 RTSP/1.0\r\n"
         "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 3\r\n"
         "User-Agent: Lavf59.27.100\r\n\r\n"
         "PLAY rtsp://127.0.0.1:8554/cam-1/stream1 RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 4\r\n"
         "Session: 5e2c1190\r\n\r\n" +
         InterleavedRtcp() +
         "GET_PARAMETER rtsp://127.0.0.1:8554/cam-1/stream1 RTSP/1.0\r\nCSeq: 5\r\n"
         "Session: 5e2c1190\r\n\r\n"
         "TEARDOWN rtsp://127.0.0.1:8554/cam-1/stream1 RTSP/1.0\r\nCSeq: 6\r\n"
         "Session: 5e2c1190\r\n\r\n";
}

// VLC 3.0.18 (live555) against a host-form URL.
std::string VlcHostSession() {
  return "OPTIONS rtsp://cam-1.localhost:8554/stream1 RTSP/1.0\r\nCSeq: 2\r\n"
         "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.07.14)\r\n\r\n"
         "DESCRIBE rtsp://cam-1.localhost:8554/stream1 RTSP/1.0\r\nCSeq: 3\r\n"
         "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.07.14)\r\n"
         "Accept: application/sdp\r\n\r\n"
         "SETUP rtsp://cam-1.localhost:8554/stream1/trackID=1 RTSP/1.0\r\nCSeq: 4\r\n"
         "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.07.14)\r\n"
         "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
         "PLAY rtsp://cam-1.localhost:8554/stream1/ RTSP/1.0\r\nCSeq: 5\r\n"
         "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.07.14)\r\n"
         "Session: 5E2C1190\r\nRange: npt=0.000-\r\n\r\n" +
         InterleavedRtcp() +
         "GET_PARAMETER rtsp://cam-1.localhost:8554/stream1/ RTSP/1.0\r\nCSeq: 6\r\n"
         "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.07.14)\r\n"
         "Session: 5E2C1190\r\n\r\n" +
         InterleavedRtcp() +
         "TEARDOWN rtsp://cam-1.localhost:8554/stream1/ RTSP/1.0\r\nCSeq: 7\r\n"
         "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.07.14)\r\n"
         "Session: 5E2C1190\r\n\r\n";
}

TEST(RequestFilterTest, RewritesOnlyGatewayUrlsOfFfmpegPathSession) {
  const std::string input = FfmpegPathSession();
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out,
            Replace(input, "rtsp://127.0.0.1:8554/cam-1/stream1", "rtsp://127.0.0.1:554/stream1"));
}

TEST(RequestFilterTest, RewritesEveryHeadCarryingTheAgentPrefix) {
  const std::string input = FfmpegPathSessionWithGatewayUrls();
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  const std::string expected =
      Replace(input, "rtsp://127.0.0.1:8554/cam-1/", "rtsp://127.0.0.1:554/");
  EXPECT_EQ(outcome.out, expected);
  EXPECT_EQ(outcome.out.find("cam-1"), std::string::npos);
}

TEST(RequestFilterTest, HostFormSessionPassesByteExact) {
  const std::string input = VlcHostSession();
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, input);
}

TEST(RequestFilterTest, OutputIsIndependentOfHowTheStreamIsSplit) {
  ExpectSplitInvariant(FfmpegPathSession());
  ExpectSplitInvariant(FfmpegPathSessionWithGatewayUrls());
  ExpectSplitInvariant(VlcHostSession());
}

TEST(RequestFilterTest, InterleavedPayloadIsNeverParsed) {
  // A frame whose payload looks like a request for another agent, and a frame of length 0.
  const std::string fake = "TEARDOWN rtsp://cam-2.localhost/x RTSP/1.0\r\n\r\n";
  const std::string input = "PLAY rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 4\r\n\r\n$\x00\x00"s +
                            static_cast<char>(fake.size()) + fake + "$\x01\x00\x00"s +
                            "GET_PARAMETER rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 5\r\n\r\n";
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, input);
  ExpectSplitInvariant(input);
}

TEST(RequestFilterTest, RefusesLaterRequestNamingAnotherAgent) {
  const std::string first =
      "DESCRIBE rtsp://127.0.0.1:8554/cam-1/stream1 RTSP/1.0\r\nCSeq: 2\r\n\r\n";
  const std::string input =
      first + "DESCRIBE rtsp://127.0.0.1:8554/cam-2/stream1 RTSP/1.0\r\nCSeq: 3\r\n\r\n" +
      "OPTIONS rtsp://127.0.0.1:8554/cam-1/stream1 RTSP/1.0\r\nCSeq: 4\r\n\r\n";
  Outcome outcome = FeedAll(input);
  EXPECT_EQ(outcome.error, FrontendError::kOtherAgent);
  EXPECT_EQ(outcome.cseq, "3");
  EXPECT_EQ(outcome.out, Replace(first, "127.0.0.1:8554/cam-1", "127.0.0.1:554"));
  ExpectSplitInvariant(input);
}

TEST(RequestFilterTest, RefusesHostFormRequestNamingAnotherAgent) {
  const std::string first = "OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n";
  Outcome outcome =
      FeedAll(first + "DESCRIBE rtsp://cam-2.localhost/s RTSP/1.0\r\nCSeq: 2\r\n\r\n");
  EXPECT_EQ(outcome.error, FrontendError::kOtherAgent);
  EXPECT_EQ(outcome.out, first);
}

TEST(RequestFilterTest, RefusesUppercaseAgentInLaterRequest) {
  const std::string first = "OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n";
  Outcome outcome =
      FeedAll(first + "DESCRIBE rtsp://CAM-1.localhost/s RTSP/1.0\r\nCSeq: 2\r\n\r\n");
  EXPECT_EQ(outcome.error, FrontendError::kNonCanonicalAgent);
  EXPECT_EQ(outcome.cseq, "2");
}

TEST(RequestFilterTest, ErrorIsSticky) {
  const FrontendRoute route = RouteOf("OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\n\r\n");
  RequestFilter stream(route, FrontendRouteConfig{"localhost"}, kCamera);
  std::string out;
  EXPECT_EQ(stream.Feed(Bytes("OPTIONS rtsp://cam-2.localhost/s RTSP/1.0\r\n\r\n"), &out),
            FrontendError::kOtherAgent);
  EXPECT_EQ(stream.Feed(Bytes("OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\n\r\n"), &out),
            FrontendError::kOtherAgent);
  EXPECT_TRUE(stream.failed());
  EXPECT_EQ(out, "");
}

TEST(RequestFilterTest, PassesRtspBodiesUntouched) {
  const std::string body = "$\x01\x00\x04 looks like a head\r\n\r\nand a frame"s;
  const std::string input =
      "SET_PARAMETER rtsp://127.0.0.1:8554/cam-1/s RTSP/1.0\r\nCSeq: 7\r\n"
      "Content-Type: text/parameters\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body +
      "GET_PARAMETER rtsp://127.0.0.1:8554/cam-1/s RTSP/1.0\r\nCSeq: 8\r\n\r\n";
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, Replace(input, "127.0.0.1:8554/cam-1/", "127.0.0.1:554/"));
  ExpectSplitInvariant(input);
}

TEST(RequestFilterTest, PassesClientAnswersToServerRequests) {
  // The camera sent GET_PARAMETER (keepalive) and ANNOUNCE; the client answers in this direction.
  const std::string input =
      "PLAY rtsp://127.0.0.1:8554/cam-1/s RTSP/1.0\r\nCSeq: 4\r\nSession: 1\r\n\r\n"
      "RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: 1\r\n\r\n"
      "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nx=1\r\n" +
      InterleavedRtcp() + "TEARDOWN rtsp://127.0.0.1:8554/cam-1/s RTSP/1.0\r\nCSeq: 5\r\n\r\n";
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, Replace(input, "127.0.0.1:8554/cam-1/", "127.0.0.1:554/"));
  ExpectSplitInvariant(input);
  EXPECT_EQ(FeedAll("PLAY rtsp://cam-1.localhost/s RTSP/1.0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n").error,
            FrontendError::kMalformedHead);
}

TEST(RequestFilterTest, ForwardsStrayLineBreaksBetweenRequests) {
  const std::string input =
      "OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n\r\n\r\n"
      "OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 2\r\n\r\n";
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, input);
}

TEST(RequestFilterTest, RefusesRtspTransferEncodingAndBadLengths) {
  const std::string first = "OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n";
  EXPECT_EQ(FeedAll(first + "Transfer-Encoding: chunked\r\n\r\n").error,
            FrontendError::kBadBodyLength);
  EXPECT_EQ(FeedAll(first + "Content-Length: -1\r\n\r\n").error, FrontendError::kBadBodyLength);
  EXPECT_EQ(FeedAll(first + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx").error,
            FrontendError::kBadBodyLength);
}

TEST(RequestFilterTest, RefusesHttpRequestOnRtspConnection) {
  const std::string first = "OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n";
  EXPECT_EQ(FeedAll(first + "GET / HTTP/1.1\r\nHost: cam-1.localhost\r\n\r\n").error,
            FrontendError::kProtocolMismatch);
}

TEST(RequestFilterTest, RewritesHttpKeepAliveRequestsInPathForm) {
  const std::string input =
      "GET /cam-1/ISAPI/Streaming/channels/101/picture HTTP/1.1\r\nHost: localhost:8554\r\n"
      "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"
      "GET /cam-1/cgi-bin/snapshot.cgi?channel=1 HTTP/1.1\r\nHost: localhost:8554\r\n"
      "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out,
            "GET /ISAPI/Streaming/channels/101/picture HTTP/1.1\r\nHost: localhost:8554\r\n"
            "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"
            "GET /cgi-bin/snapshot.cgi?channel=1 HTTP/1.1\r\nHost: localhost:8554\r\n"
            "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");
  ExpectSplitInvariant(input);
}

TEST(RequestFilterTest, RefusesPooledHttpRequestForAnotherAgent) {
  const std::string first = "GET /cam-1/snap.jpg HTTP/1.1\r\nHost: localhost:8554\r\n\r\n";
  Outcome outcome = FeedAll(first + "GET /cam-2/snap.jpg HTTP/1.1\r\nHost: localhost:8554\r\n\r\n");
  EXPECT_EQ(outcome.error, FrontendError::kOtherAgent);
  EXPECT_EQ(outcome.out, "GET /snap.jpg HTTP/1.1\r\nHost: localhost:8554\r\n\r\n");
}

TEST(RequestFilterTest, PassesChunkedBodiesWithExtensionsAndTrailers) {
  const std::string chunked =
      "5\r\nhello\r\n"
      "1A;name=value;x\r\nabcdefghijklmnopqrstuvwxyz\r\n"
      "3 ; ext\r\nGET\r\n"
      "0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
  const std::string input =
      "POST /cam-1/ISAPI/Event/notification HTTP/1.1\r\nHost: gw\r\n"
      "Transfer-Encoding: chunked\r\nContent-Type: application/xml\r\n\r\n" +
      chunked + "GET /cam-1/next HTTP/1.1\r\nHost: gw\r\n\r\n";
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out,
            "POST /ISAPI/Event/notification HTTP/1.1\r\nHost: gw\r\n"
            "Transfer-Encoding: chunked\r\nContent-Type: application/xml\r\n\r\n" +
                chunked + "GET /next HTTP/1.1\r\nHost: gw\r\n\r\n");
  ExpectSplitInvariant(input);
}

TEST(RequestFilterTest, PassesContentLengthBodyThenNextRequest) {
  const std::string input =
      "PUT /ISAPI/System/time HTTP/1.1\r\nHost: cam-1.localhost\r\nContent-Length: 11\r\n\r\n"
      "<Time/>\r\n\r\n"
      "GET /ISAPI/System/time HTTP/1.1\r\nHost: cam-1.localhost\r\n\r\n";
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, input);
}

TEST(RequestFilterTest, RefusesMalformedChunkedBodies) {
  const std::string head =
      "POST /x HTTP/1.1\r\nHost: cam-1.localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const std::string& body :
       {"g\r\n"s, "\r\n"s, "5\r\nhelloXX"s, "5\nhello\r\n"s, "11111111111111111\r\n"s, "5 x\r\n"s,
        "5;a\x01\r\n"s, "0\r\n bad: fold\r\n\r\n"s, "0\r\nnocolon\r\n\r\n"s, "0\r\nX: 1\n"s,
        std::string(2000, '0')}) {
    Outcome outcome = FeedAll(head + body);
    EXPECT_EQ(outcome.error, FrontendError::kBadChunkedBody) << body;
    EXPECT_TRUE(outcome.out.starts_with(head));
  }
}

TEST(RequestFilterTest, RefusesAmbiguousHttpBodyLengths) {
  const std::string head = "POST /x HTTP/1.1\r\nHost: cam-1.localhost\r\n";
  for (const std::string& fields :
       {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"s, "Content-Length: 5x\r\n"s,
        "Content-Length: 5\r\nContent-Length: 6\r\n"s, "Transfer-Encoding: gzip\r\n"s,
        "Transfer-Encoding: chunked, chunked\r\n"s,
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"s}) {
    EXPECT_EQ(FeedAll(head + fields + "\r\n").error, FrontendError::kBadBodyLength) << fields;
  }
  EXPECT_EQ(FeedAll("POST /x HTTP/1.0\r\nHost: cam-1.localhost\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n")
                .error,
            FrontendError::kBadBodyLength);
}

TEST(RequestFilterTest, AcceptsChunkedAsFinalCoding) {
  const std::string input =
      "POST /x HTTP/1.1\r\nHost: cam-1.localhost\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
      "0\r\n\r\n";
  Outcome outcome = FeedAll(input);
  EXPECT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, input);
}

TEST(RequestFilterTest, RefusesOversizedHead) {
  const std::string first = "OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n";
  const std::string big = "DESCRIBE rtsp://cam-1.localhost/s RTSP/1.0\r\nX-Pad: " +
                          std::string(proto::kMaxHeadBytes, 'p');
  Outcome outcome = FeedAll(first + big);
  EXPECT_EQ(outcome.error, FrontendError::kHeadTooLarge);
  EXPECT_EQ(outcome.out, first);
  EXPECT_EQ(FrontendErrorStatus(outcome.error), 431);
}

TEST(RequestFilterTest, AcceptsHeadOfExactlyTheLimit) {
  const std::string start = "DESCRIBE rtsp://cam-1.localhost/s RTSP/1.0\r\nX-Pad: ";
  const std::string input =
      start + std::string(proto::kMaxHeadBytes - start.size() - 4, 'p') + "\r\n\r\n";
  ASSERT_EQ(input.size(), proto::kMaxHeadBytes);
  Outcome outcome = FeedSplit(input, {100, 5000}, RouteOf(input));
  EXPECT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, input);
}

TEST(RequestFilterTest, RefusesTooManyHeaders) {
  std::string input = "OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\n";
  for (int i = 0; i < 65; ++i) {
    input += "X-H" + std::to_string(i) + ": v\r\n";
  }
  const FrontendRoute route = RouteOf("OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\n\r\n");
  EXPECT_EQ(FeedAll(input + "\r\n", route).error, FrontendError::kTooManyHeaders);
}

TEST(RequestFilterTest, RefusesBareLineFeedWithoutWaitingForTheEnd) {
  const FrontendRoute route = RouteOf("OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\r\n\r\n");
  RequestFilter stream(route, FrontendRouteConfig{"localhost"}, kCamera);
  std::string out;
  EXPECT_EQ(stream.Feed(Bytes("OPTIONS rtsp://cam-1.localhost/s RTSP/1.0\n"), &out),
            FrontendError::kMalformedHead);
}

TEST(RequestFilterTest, RtspOverHttpIsRelayedByteExact) {
  const std::string input =
      "POST /stream1 HTTP/1.0\r\nHost: cam-1.localhost\r\nx-sessioncookie: 7cbda8a3\r\n"
      "Content-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n\r\n"
      "REVTQ1JJQkUgcnRzcDovL2NhbS0xLmxvY2FsaG9zdC9zdHJlYW0xIFJUU1AvMS4wDQpDU2VxOiAyDQoNCg==";
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, input);
}

TEST(RequestFilterTest, ConnectConsumesItsHeadAndRelaysTheRest) {
  const std::string head = "CONNECT cam-1:rtsp HTTP/1.1\r\nHost: cam-1:rtsp\r\n\r\n";
  const std::string tunnelled = "\x16\x03\x01\x00\x05hello garbage \r\n\r\n"s;
  Outcome outcome = FeedAll(head + tunnelled);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, tunnelled);
  ExpectSplitInvariant(head + tunnelled);
}

TEST(RequestFilterTest, HostFormUpgradeTurnsTheStreamRaw) {
  const std::string input =
      "GET /ws HTTP/1.1\r\nHost: cam-1.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
      "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"s;
  Outcome outcome = FeedAll(input);
  ASSERT_EQ(outcome.error, FrontendError::kOk);
  EXPECT_EQ(outcome.out, input);
}

TEST(RequestFilterTest, ReportsPassThroughBudgetForZeroCopy) {
  const std::string head = "PUT /cam-1/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n";
  RequestFilter stream(RouteOf(head), FrontendRouteConfig{"localhost"}, kCamera);
  std::string out;
  EXPECT_EQ(stream.PassThroughBudget(), 0u);
  ASSERT_EQ(stream.Feed(Bytes(head + std::string(10, 'b')), &out), FrontendError::kOk);
  EXPECT_EQ(out,
            "PUT /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n" + std::string(10, 'b'));
  EXPECT_EQ(stream.PassThroughBudget(), 90u);
  stream.SkipPassThrough(60);  // forwarded by the caller itself
  EXPECT_EQ(stream.PassThroughBudget(), 30u);
  out.clear();
  ASSERT_EQ(
      stream.Feed(Bytes(std::string(30, 'b') + "GET /cam-1/y HTTP/1.1\r\nHost: gw\r\n\r\n"), &out),
      FrontendError::kOk);
  EXPECT_EQ(out, std::string(30, 'b') + "GET /y HTTP/1.1\r\nHost: gw\r\n\r\n");
  EXPECT_EQ(stream.PassThroughBudget(), 0u);
  EXPECT_EQ(stream.heads(), 2u);
}

TEST(RequestFilterTest, RawModeBudgetIsUnbounded) {
  const std::string head =
      "GET /s HTTP/1.0\r\nHost: cam-1.localhost\r\nAccept: application/x-rtsp-tunnelled\r\n\r\n";
  RequestFilter stream(RouteOf(head), FrontendRouteConfig{"localhost"}, kCamera);
  EXPECT_EQ(stream.PassThroughBudget(), UINT64_MAX);
}

}  // namespace
}  // namespace camtunnel::gateway
