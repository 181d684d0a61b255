// The strict head parser: accepted heads (HTTP, RTSP, CONNECT), every rejected construct, and the
// exact limits (8192 bytes, 64 headers).
#include "proto/http_head.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>

// Counts operator new calls on this thread while enabled, to check that parsing does not
// allocate. Replacing the global operator new/delete pair is the only portable hook; both go to
// malloc/free so the sanitizers still see every allocation.
namespace {
thread_local bool count_allocations = false;
thread_local size_t allocations = 0;
}  // namespace

void* operator new(size_t n) {
  if (count_allocations) {
    ++allocations;
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
// GCC 12 at -O3 inlines these into std::allocator and, not knowing operator new was replaced,
// reports free() on a new'd pointer (-Wmismatched-new-delete false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace camtunnel::proto {
namespace {

using namespace std::string_literals;

HeadResult Request(std::string_view buf) {
  RequestHead head;
  return ParseRequestHead(buf, &head);
}

HeadResult Response(std::string_view buf) {
  ResponseHead head;
  return ParseResponseHead(buf, &head);
}

// A request head of exactly `total` bytes, padded with one long header value.
std::string RequestOfSize(size_t total) {
  const std::string start = "GET / HTTP/1.1\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  return start + std::string(total - start.size() - end.size(), 'p') + end;
}

std::string RequestWithHeaders(size_t n) {
  std::string s = "GET / HTTP/1.1\r\n";
  for (size_t i = 0; i < n; ++i) {
    s += "X-H" + std::to_string(i) + ": v\r\n";
  }
  return s + "\r\n";
}

TEST(RequestHeadTest, ParsesRequestHead) {
  const std::string buf =
      "GET /camtunnel/v1/control HTTP/1.1\r\nHost: gw\r\nUpgrade: camtunnel/1\r\n\r\n";
  RequestHead head;
  ASSERT_EQ(ParseRequestHead(buf, &head), HeadResult::kComplete);
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/camtunnel/v1/control");
  EXPECT_EQ(head.protocol, Protocol::kHttp11);
  ASSERT_EQ(head.headers.count, 2u);
  EXPECT_EQ(head.headers.fields[0].name, "Host");
  EXPECT_EQ(head.headers.fields[0].value, "gw");
  EXPECT_EQ(head.headers.fields[1].value, "camtunnel/1");
  EXPECT_EQ(head.head_bytes, buf.size());
}

TEST(RequestHeadTest, ParsesRtspRequest) {
  RequestHead head;
  ASSERT_EQ(ParseRequestHead("DESCRIBE rtsp://cam-42.cams:8554/stream1 RTSP/1.0\r\nCSeq: 2\r\n"
                             "Accept: application/sdp\r\n\r\n",
                             &head),
            HeadResult::kComplete);
  EXPECT_EQ(head.method, "DESCRIBE");
  EXPECT_EQ(head.target, "rtsp://cam-42.cams:8554/stream1");
  EXPECT_EQ(head.protocol, Protocol::kRtsp10);
  EXPECT_EQ(head.headers.Find("cseq"), "2");
}

TEST(RequestHeadTest, ParsesHttp10Request) {
  RequestHead head;
  ASSERT_EQ(ParseRequestHead("GET /snapshot.jpg HTTP/1.0\r\n\r\n", &head), HeadResult::kComplete);
  EXPECT_EQ(head.protocol, Protocol::kHttp10);
  EXPECT_EQ(head.headers.count, 0u);
}

TEST(RequestHeadTest, ParsesConnectRequest) {
  RequestHead head;
  ASSERT_EQ(ParseRequestHead("CONNECT cam-42:rtsp HTTP/1.1\r\nHost: cam-42:rtsp\r\n\r\n", &head),
            HeadResult::kComplete);
  EXPECT_EQ(head.method, "CONNECT");
  EXPECT_EQ(head.target, "cam-42:rtsp");
}

TEST(RequestHeadTest, HeadBytesStopsBeforeBody) {
  const std::string head_text = "POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\n";
  RequestHead head;
  ASSERT_EQ(ParseRequestHead(head_text + "body\r\n\r\n", &head), HeadResult::kComplete);
  EXPECT_EQ(head.head_bytes, head_text.size());
}

TEST(RequestHeadTest, TrimsWhitespaceAroundValues) {
  RequestHead head;
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nA: \t v 1 \t\r\nB:v\r\n\r\n", &head),
            HeadResult::kComplete);
  EXPECT_EQ(head.headers.fields[0].value, "v 1");
  EXPECT_EQ(head.headers.fields[1].value, "v");
}

TEST(RequestHeadTest, AcceptsEmptyValue) {
  RequestHead head;
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nA:\r\nB:   \r\n\r\n", &head),
            HeadResult::kComplete);
  EXPECT_EQ(head.headers.fields[0].value, "");
  EXPECT_EQ(head.headers.fields[1].value, "");
}

TEST(RequestHeadTest, AcceptsTabAndObsTextInValue) {
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nA: a\tb\xc3\xa9\r\n\r\n"), HeadResult::kComplete);
}

TEST(RequestHeadTest, ParsingDoesNotAllocate) {
  const std::string request = RequestWithHeaders(kMaxHeaders);
  const std::string too_large = RequestOfSize(kMaxHeadBytes + 1);
  const std::string response = "RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: 1234\r\n\r\n";
  RequestHead request_head;
  ResponseHead response_head;
  count_allocations = true;
  allocations = 0;
  ::operator delete(::operator new(1));  // proves the hook counts (a call, not elidable)
  const size_t hook_check = allocations;
  allocations = 0;
  const HeadResult r1 = ParseRequestHead(request, &request_head);
  const HeadResult r2 = ParseResponseHead(response, &response_head);
  const HeadResult r3 = ParseRequestHead(too_large, &request_head);
  count_allocations = false;
  EXPECT_EQ(hook_check, 1u);
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(r1, HeadResult::kComplete);
  EXPECT_EQ(r2, HeadResult::kComplete);
  EXPECT_EQ(r3, HeadResult::kTooLarge);
}

TEST(RequestHeadTest, NeedsMoreForEmptyBuffer) { EXPECT_EQ(Request(""), HeadResult::kNeedMore); }

TEST(RequestHeadTest, NeedsMoreForEveryStrictPrefix) {
  const std::string buf = "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: ffprobe\r\n\r\n";
  for (size_t n = 0; n < buf.size(); ++n) {
    EXPECT_EQ(Request(std::string_view(buf).substr(0, n)), HeadResult::kNeedMore) << n;
  }
  EXPECT_EQ(Request(buf), HeadResult::kComplete);
}

TEST(RequestHeadTest, RejectsHeadWithBareLf) {
  EXPECT_EQ(Request("GET / HTTP/1.1\n\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nHost: a\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nHost: a\r\n\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsBareLfBeforeHeadIsComplete) {
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nHost: a\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsBareCr) {
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsObsoleteLineFolding) {
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsWhitespaceBeforeColon) {
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsHeaderWithoutColon) {
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nHost\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsEmptyHeaderName) {
  EXPECT_EQ(Request("GET / HTTP/1.1\r\n: a\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsNonTokenHeaderName) {
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nH\xc3\xa9: a\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsControlCharacterInValue) {
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nA: x\0y\r\n\r\n"s), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nA: x\x7fy\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nA: x\x1by\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsUnknownVersion) {
  EXPECT_EQ(Request("GET / HTTP/2.0\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / HTTP/1.2\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / http/1.1\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / RTSP/2.0\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET / HTTP/1.1 \r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET /\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsNonTokenMethod) {
  EXPECT_EQ(Request("G(T / HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request(" GET / HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsSpaceInTarget) {
  EXPECT_EQ(Request("GET  / HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET /a b HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET /a\tb HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsControlOrNonAsciiInTarget) {
  EXPECT_EQ(Request("GET /a\x01 HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET /a\x7f HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Request("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsEmptyFirstLine) {
  EXPECT_EQ(Request("\r\nGET / HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, RejectsBadLineBeforeHeadIsComplete) {
  // Garbage is answered at once, not after waiting for a blank line.
  EXPECT_EQ(Request("\x16\x03\x01\x02\x00\r\n"s), HeadResult::kMalformed);  // TLS hello
  EXPECT_EQ(Request("GET / HTTP/1.1\r\nbad line\r\n"), HeadResult::kMalformed);
}

TEST(RequestHeadTest, AcceptsHeadOfExactly8192Bytes) {
  std::string buf = RequestOfSize(kMaxHeadBytes);
  ASSERT_EQ(buf.size(), 8192u);
  RequestHead head;
  ASSERT_EQ(ParseRequestHead(buf + "extra", &head), HeadResult::kComplete);
  EXPECT_EQ(head.head_bytes, 8192u);
}

TEST(RequestHeadTest, TooLargeWhenHeadEndsPastLimit) {
  EXPECT_EQ(Request(RequestOfSize(kMaxHeadBytes + 1)), HeadResult::kTooLarge);
}

TEST(RequestHeadTest, TooLargeWhen8192BytesHaveNoEnd) {
  std::string buf = "GET / HTTP/1.1\r\nX: " + std::string(kMaxHeadBytes, 'a');
  EXPECT_EQ(Request(std::string_view(buf).substr(0, kMaxHeadBytes)), HeadResult::kTooLarge);
  EXPECT_EQ(Request(buf), HeadResult::kTooLarge);
}

TEST(RequestHeadTest, NeedsMoreBelowLimitWithoutEnd) {
  std::string buf = "GET / HTTP/1.1\r\nX: " + std::string(kMaxHeadBytes, 'a');
  EXPECT_EQ(Request(std::string_view(buf).substr(0, kMaxHeadBytes - 1)), HeadResult::kNeedMore);
}

TEST(RequestHeadTest, TooLargeWhenFinalLfWouldBeByte8193) {
  std::string buf = RequestOfSize(kMaxHeadBytes + 1);  // the last LF is past the limit
  EXPECT_EQ(Request(std::string_view(buf).substr(0, kMaxHeadBytes)), HeadResult::kTooLarge);
}

TEST(RequestHeadTest, Accepts64Headers) {
  const std::string buf = RequestWithHeaders(kMaxHeaders);
  RequestHead head;
  ASSERT_EQ(ParseRequestHead(buf, &head), HeadResult::kComplete);
  EXPECT_EQ(head.headers.count, 64u);
  EXPECT_EQ(head.headers.fields[63].name, "X-H63");
}

TEST(RequestHeadTest, RejectsSixtyFifthHeader) {
  EXPECT_EQ(Request(RequestWithHeaders(kMaxHeaders + 1)), HeadResult::kTooManyHeaders);
}

TEST(ResponseHeadTest, ParsesResponseHead) {
  const std::string buf =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: camtunnel/1\r\n\r\n";
  ResponseHead head;
  ASSERT_EQ(ParseResponseHead(buf, &head), HeadResult::kComplete);
  EXPECT_EQ(head.protocol, Protocol::kHttp11);
  EXPECT_EQ(head.status, 101);
  EXPECT_EQ(head.reason, "Switching Protocols");
  EXPECT_EQ(head.headers.count, 2u);
  EXPECT_EQ(head.head_bytes, buf.size());
}

TEST(ResponseHeadTest, ParsesRtspResponse) {
  ResponseHead head;
  ASSERT_EQ(ParseResponseHead(
                "RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Base: rtsp://10.0.0.5/s/\r\n\r\n", &head),
            HeadResult::kComplete);
  EXPECT_EQ(head.protocol, Protocol::kRtsp10);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers.Find("content-base"), "rtsp://10.0.0.5/s/");
}

TEST(ResponseHeadTest, AcceptsEmptyOrMissingReason) {
  ResponseHead head;
  ASSERT_EQ(ParseResponseHead("HTTP/1.1 204 \r\n\r\n", &head), HeadResult::kComplete);
  EXPECT_EQ(head.reason, "");
  ASSERT_EQ(ParseResponseHead("HTTP/1.0 404\r\n\r\n", &head), HeadResult::kComplete);
  EXPECT_EQ(head.status, 404);
  EXPECT_EQ(head.reason, "");
}

TEST(ResponseHeadTest, RejectsStatusOutOfRange) {
  EXPECT_EQ(Response("HTTP/1.1 099 Low\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Response("HTTP/1.1 1000 High\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Response("HTTP/1.1 20 Short\r\n\r\n"), HeadResult::kMalformed);
}

TEST(ResponseHeadTest, RejectsNonDigitStatus) {
  EXPECT_EQ(Response("HTTP/1.1 2x0 OK\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Response("HTTP/1.1 +20 OK\r\n\r\n"), HeadResult::kMalformed);
}

TEST(ResponseHeadTest, RejectsBadStatusLineSpacing) {
  EXPECT_EQ(Response("HTTP/1.1  200 OK\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Response("HTTP/1.1200 OK\r\n\r\n"), HeadResult::kMalformed);
}

TEST(ResponseHeadTest, RejectsControlInReason) {
  EXPECT_EQ(Response("HTTP/1.1 200 O\x01K\r\n\r\n"), HeadResult::kMalformed);
}

TEST(ResponseHeadTest, RejectsUnknownVersion) {
  EXPECT_EQ(Response("HTTP/2 200 OK\r\n\r\n"), HeadResult::kMalformed);
  EXPECT_EQ(Response("ICY 200 OK\r\n\r\n"), HeadResult::kMalformed);
}

TEST(ResponseHeadTest, RejectsHeadWithBareLf) {
  EXPECT_EQ(Response("HTTP/1.1 200 OK\nA: b\r\n\r\n"), HeadResult::kMalformed);
}

TEST(ResponseHeadTest, RejectsRequestLine) {
  EXPECT_EQ(Response("GET / HTTP/1.1\r\n\r\n"), HeadResult::kMalformed);
}

TEST(ResponseHeadTest, NeedsMoreForPartialHead) {
  EXPECT_EQ(Response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"), HeadResult::kNeedMore);
}

TEST(HeaderListTest, FindIsCaseInsensitiveAndReturnsFirst) {
  RequestHead head;
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n", &head),
            HeadResult::kComplete);
  EXPECT_EQ(head.headers.Find("X-A"), "1");
  EXPECT_EQ(head.headers.Find("x-A"), "1");
  EXPECT_FALSE(head.headers.Find("X-B"));
  EXPECT_FALSE(head.headers.Find("X-"));
}

TEST(HeaderListTest, CountsCaseInsensitively) {
  RequestHead head;
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nB: 3\r\n\r\n", &head),
            HeadResult::kComplete);
  EXPECT_EQ(head.headers.Count("X-A"), 2u);
  EXPECT_EQ(head.headers.Count("b"), 1u);
  EXPECT_EQ(head.headers.Count("c"), 0u);
}

TEST(HeadResultNameTest, NamesEveryResult) {
  EXPECT_EQ(HeadResultName(HeadResult::kComplete), "complete");
  EXPECT_EQ(HeadResultName(HeadResult::kNeedMore), "need-more");
  EXPECT_EQ(HeadResultName(HeadResult::kTooLarge), "too-large");
  EXPECT_EQ(HeadResultName(HeadResult::kTooManyHeaders), "too-many-headers");
  EXPECT_EQ(HeadResultName(HeadResult::kMalformed), "malformed");
}

TEST(EqualsIgnoreCaseTest, FoldsAsciiOnly) {
  EXPECT_TRUE(EqualsIgnoreCase("Upgrade", "uPGRADE"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("Upgrade", "Upgrades"));
  EXPECT_FALSE(EqualsIgnoreCase("[", "{"));  // 0x5b vs 0x7b: not letters
}

TEST(HeaderHasTokenTest, FindsTokenInList) {
  EXPECT_TRUE(HeaderHasToken("Upgrade", "upgrade"));
  EXPECT_TRUE(HeaderHasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(HeaderHasToken("websocket ,\tcamtunnel/1 ", "camtunnel/1"));
  EXPECT_TRUE(HeaderHasToken(",,camtunnel/1,", "camtunnel/1"));
}

TEST(HeaderHasTokenTest, RejectsPartialMatches) {
  EXPECT_FALSE(HeaderHasToken("upgraded", "upgrade"));
  EXPECT_FALSE(HeaderHasToken("camtunnel/10", "camtunnel/1"));
  EXPECT_FALSE(HeaderHasToken("camtunnel/1 x", "camtunnel/1"));
  EXPECT_FALSE(HeaderHasToken("", "upgrade"));
  EXPECT_FALSE(HeaderHasToken("a, ,b", ""));
}

TEST(ContentLengthTest, ParsesDecimal) {
  EXPECT_EQ(ParseContentLength("0"), 0u);
  EXPECT_EQ(ParseContentLength("1234"), 1234u);
  EXPECT_EQ(ParseContentLength("999999999999999999"), 999999999999999999u);
}

TEST(ContentLengthTest, RejectsMoreThanEighteenDigits) {
  EXPECT_FALSE(ParseContentLength("1000000000000000000"));
}

TEST(ContentLengthTest, RejectsSignsSpacesListsAndEmpty) {
  EXPECT_FALSE(ParseContentLength(""));
  EXPECT_FALSE(ParseContentLength("+5"));
  EXPECT_FALSE(ParseContentLength("-5"));
  EXPECT_FALSE(ParseContentLength(" 5"));
  EXPECT_FALSE(ParseContentLength("5,5"));
  EXPECT_FALSE(ParseContentLength("0x10"));
}

}  // namespace
}  // namespace camtunnel::proto
