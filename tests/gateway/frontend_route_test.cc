// Routing of the first frontend request (every form, every refusal), the per-head check used on
// routed connections, and the error / redirect answers.
#include "gateway/frontend_route.h"

#include <gtest/gtest.h>

#include <string>

namespace camtunnel::gateway {
namespace {

RouteDecision Route(const std::string& text, const std::string& suffix = "localhost") {
  proto::RequestHead head;
  EXPECT_EQ(proto::ParseRequestHead(text, &head), proto::HeadResult::kComplete) << text;
  return RouteFirstRequest(head, FrontendRouteConfig{suffix});
}

FrontendError RouteError(const std::string& text) { return Route(text).error; }

// Checks `text` on a connection routed by `first`; returns the error and the new target.
FrontendError Check(const std::string& first, const std::string& text, std::string* target,
                    std::string_view camera = "127.0.0.1:554") {
  RouteDecision decision = Route(first);
  EXPECT_EQ(decision.error, FrontendError::kOk);
  proto::RequestHead head;
  EXPECT_EQ(proto::ParseRequestHead(text, &head), proto::HeadResult::kComplete) << text;
  return CheckRoutedRequest(head, decision.route, FrontendRouteConfig{"localhost"}, camera, target);
}

constexpr char kRtspPathFirst[] =
    "DESCRIBE rtsp://127.0.0.1:8554/cam-1/stream1 RTSP/1.0\r\nCSeq: 2\r\n\r\n";
constexpr char kRtspHostFirst[] =
    "DESCRIBE rtsp://cam-1.localhost:8554/stream1 RTSP/1.0\r\nCSeq: 2\r\n\r\n";

TEST(FrontendRouteTest, RoutesRtspHostFormWithoutRewrite) {
  RouteDecision d = Route(
      "OPTIONS rtsp://cam-1.localhost:8554/stream1 RTSP/1.0\r\nCSeq: 1\r\n"
      "User-Agent: Lavf59.27.100\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kRtspHost);
  EXPECT_EQ(d.route.agent_id, "cam-1");
  EXPECT_EQ(d.route.service, "rtsp");
  EXPECT_FALSE(d.route.port);
  EXPECT_EQ(d.route.path_prefix, "");
}

TEST(FrontendRouteTest, RoutesRtspPathFormWithPrefixToStrip) {
  RouteDecision d = Route(
      "DESCRIBE rtsp://127.0.0.1:8554/cam-1/stream1?x=1 RTSP/1.0\r\nAccept: application/sdp\r\n"
      "CSeq: 2\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kRtspPath);
  EXPECT_EQ(d.route.agent_id, "cam-1");
  EXPECT_EQ(d.route.service, "rtsp");
  EXPECT_EQ(d.route.path_prefix, "/cam-1");
  EXPECT_EQ(d.route.client_authority, "127.0.0.1:8554");
}

TEST(FrontendRouteTest, RoutesRtspPathFormWithAgentAlone) {
  RouteDecision d = Route("OPTIONS rtsp://gw/cam-1 RTSP/1.0\r\nCSeq: 1\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.agent_id, "cam-1");
  EXPECT_EQ(d.route.client_authority, "gw");
}

TEST(FrontendRouteTest, ClientAuthorityOmitsUserinfo) {
  RouteDecision d = Route("DESCRIBE rtsp://admin:pw@gw:8554/cam-1/s RTSP/1.0\r\nCSeq: 1\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.client_authority, "gw:8554");
}

TEST(FrontendRouteTest, MatchesSuffixCaseInsensitively) {
  RouteDecision d = Route("OPTIONS rtsp://cam-1.LocalHost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kRtspHost);
  EXPECT_EQ(d.route.agent_id, "cam-1");
}

TEST(FrontendRouteTest, RefusesUppercaseHostLabelInsteadOfFolding) {
  EXPECT_EQ(RouteError("OPTIONS rtsp://CAM-1.localhost:8554/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kNonCanonicalAgent);
  EXPECT_EQ(FrontendErrorStatus(FrontendError::kNonCanonicalAgent), 400);
}

TEST(FrontendRouteTest, RefusesUppercasePathSegment) {
  EXPECT_EQ(RouteError("OPTIONS rtsp://gw:8554/Cam-1/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kNonCanonicalAgent);
}

TEST(FrontendRouteTest, RefusesNonCanonicalLabels) {
  EXPECT_EQ(RouteError("OPTIONS rtsp://a.cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kNonCanonicalAgent);
  EXPECT_EQ(RouteError("OPTIONS rtsp://-cam.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kNonCanonicalAgent);
  EXPECT_EQ(RouteError("OPTIONS rtsp://gw/cam%2D1/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kNonCanonicalAgent);
  EXPECT_EQ(RouteError("OPTIONS rtsp://gw/cam_1/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kNonCanonicalAgent);
  EXPECT_EQ(RouteError("OPTIONS rtsp://gw/" + std::string(64, 'a') + " RTSP/1.0\r\n\r\n"),
            FrontendError::kNonCanonicalAgent);
}

TEST(FrontendRouteTest, RefusesOptionsStarWithoutAgent) {
  EXPECT_EQ(RouteError("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"), FrontendError::kNoAgent);
}

TEST(FrontendRouteTest, RefusesUrlWithoutAgentSegment) {
  EXPECT_EQ(RouteError("DESCRIBE rtsp://gw:8554/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kNoAgent);
  EXPECT_EQ(RouteError("DESCRIBE rtsp://gw:8554 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kNoAgent);
  EXPECT_EQ(RouteError("DESCRIBE rtsp://gw:8554//cam-1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kNoAgent);
}

TEST(FrontendRouteTest, RefusesMalformedRtspUrls) {
  EXPECT_EQ(RouteError("DESCRIBE http://gw/cam-1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kBadUrl);
  EXPECT_EQ(RouteError("DESCRIBE /cam-1/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"), FrontendError::kBadUrl);
  EXPECT_EQ(RouteError("DESCRIBE rtsp://gw:99999/cam-1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kBadUrl);
  EXPECT_EQ(RouteError("DESCRIBE rtsp://[::1/cam-1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kBadUrl);
  EXPECT_EQ(RouteError("DESCRIBE rtsp://:554/cam-1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kBadUrl);
}

TEST(FrontendRouteTest, AcceptsIpv6LiteralGatewayAuthority) {
  RouteDecision d = Route("DESCRIBE rtsp://[::1]:8554/cam-1/s RTSP/1.0\r\nCSeq: 1\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.client_authority, "[::1]:8554");
}

TEST(FrontendRouteTest, RefusesRtspRedirectAndUnknownMethods) {
  EXPECT_EQ(RouteError("REDIRECT rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kMethodNotAllowed);
  EXPECT_EQ(RouteError("FROB rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kMethodNotImplemented);
  EXPECT_EQ(RouteError("describe rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            FrontendError::kMethodNotImplemented);
  EXPECT_EQ(FrontendErrorStatus(FrontendError::kMethodNotAllowed), 405);
  EXPECT_EQ(FrontendErrorStatus(FrontendError::kMethodNotImplemented), 501);
}

TEST(FrontendRouteTest, RefusesHttpTraceAndUnknownMethods) {
  EXPECT_EQ(RouteError("TRACE / HTTP/1.1\r\nHost: cam-1.localhost\r\n\r\n"),
            FrontendError::kMethodNotAllowed);
  EXPECT_EQ(RouteError("BREW /cam-1/pot HTTP/1.1\r\nHost: gw\r\n\r\n"),
            FrontendError::kMethodNotImplemented);
}

TEST(FrontendRouteTest, RoutesHttpHostForm) {
  RouteDecision d = Route(
      "GET /ISAPI/Streaming/channels/101/picture HTTP/1.1\r\nHost: cam-1.localhost:8554\r\n"
      "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kHttpHost);
  EXPECT_EQ(d.route.agent_id, "cam-1");
  EXPECT_EQ(d.route.service, "http");
  EXPECT_EQ(d.route.path_prefix, "");
}

TEST(FrontendRouteTest, RoutesHttpPathForm) {
  RouteDecision d = Route("GET /cam-1/snapshot.jpg HTTP/1.1\r\nHost: localhost:8554\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kHttpPath);
  EXPECT_EQ(d.route.agent_id, "cam-1");
  EXPECT_EQ(d.route.service, "http");
  EXPECT_EQ(d.route.path_prefix, "/cam-1");
  EXPECT_EQ(d.route.client_authority, "localhost:8554");
}

TEST(FrontendRouteTest, RoutesHttp10PathFormWithoutHost) {
  RouteDecision d = Route("GET /cam-1/snapshot.jpg HTTP/1.0\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kHttpPath);
  EXPECT_EQ(d.route.client_authority, "");
}

TEST(FrontendRouteTest, HttpAbsoluteFormWinsOverHost) {
  RouteDecision d =
      Route("GET http://cam-2.localhost/snap.jpg HTTP/1.1\r\nHost: cam-1.localhost\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.agent_id, "cam-2");
}

TEST(FrontendRouteTest, RefusesHttp11WithoutOrWithDuplicateHost) {
  EXPECT_EQ(RouteError("GET /cam-1/s HTTP/1.1\r\n\r\n"), FrontendError::kBadHost);
  EXPECT_EQ(RouteError("GET /cam-1/s HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            FrontendError::kBadHost);
  EXPECT_EQ(RouteError("GET /cam-1/s HTTP/1.1\r\nHost: u@gw\r\n\r\n"), FrontendError::kBadHost);
}

TEST(FrontendRouteTest, RefusesUppercaseHttpHost) {
  EXPECT_EQ(RouteError("GET / HTTP/1.1\r\nHost: Cam-1.localhost\r\n\r\n"),
            FrontendError::kNonCanonicalAgent);
}

TEST(FrontendRouteTest, RoutesRtspOverHttpGetInHostForm) {
  RouteDecision d = Route(
      "GET /stream1 HTTP/1.0\r\nHost: cam-1.localhost:8554\r\nx-sessioncookie: 7cbda8a3\r\n"
      "Accept: application/x-rtsp-tunnelled\r\nPragma: no-cache\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kRtspOverHttp);
  EXPECT_EQ(d.route.service, "rtsp");
  EXPECT_EQ(ProtocolOfForm(d.route.form), FrontendProtocol::kHttp);
}

TEST(FrontendRouteTest, RoutesRtspOverHttpPostInHostForm) {
  RouteDecision d = Route(
      "POST /stream1 HTTP/1.0\r\nHost: cam-1.localhost\r\nx-sessioncookie: 7cbda8a3\r\n"
      "Content-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kRtspOverHttp);
}

TEST(FrontendRouteTest, RefusesRtspOverHttpInPathForm) {
  RouteDecision d = Route(
      "GET /cam-1/stream1 HTTP/1.0\r\nx-sessioncookie: 7cbda8a3\r\n"
      "Accept: application/sdp, application/X-RTSP-Tunnelled;q=1\r\n\r\n");
  EXPECT_EQ(d.error, FrontendError::kFormNotAllowed);
  EXPECT_EQ(FrontendErrorStatus(d.error), 403);
}

TEST(FrontendRouteTest, RoutesConnectWithServiceName) {
  RouteDecision d = Route("CONNECT cam-1:rtsp HTTP/1.1\r\nHost: cam-1:rtsp\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kConnect);
  EXPECT_EQ(d.route.agent_id, "cam-1");
  EXPECT_EQ(d.route.service, "rtsp");
  EXPECT_FALSE(d.route.port);
}

TEST(FrontendRouteTest, RoutesConnectWithPortAsBothNameAndNumber) {
  RouteDecision d = Route("CONNECT cam-1:554 HTTP/1.1\r\nHost: cam-1:554\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.service, "554");
  ASSERT_TRUE(d.route.port);
  EXPECT_EQ(*d.route.port, 554);
}

TEST(FrontendRouteTest, RoutesConnectToHostFormName) {
  RouteDecision d = Route("CONNECT cam-1.localhost:8080 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.agent_id, "cam-1");
  EXPECT_EQ(d.route.port, 8080);
}

TEST(FrontendRouteTest, RefusesBadConnectTargets) {
  EXPECT_EQ(RouteError("CONNECT cam-1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            FrontendError::kBadConnectTarget);
  EXPECT_EQ(RouteError("CONNECT cam-1: HTTP/1.1\r\nHost: x\r\n\r\n"),
            FrontendError::kBadConnectTarget);
  EXPECT_EQ(RouteError("CONNECT cam-1:RTSP HTTP/1.1\r\nHost: x\r\n\r\n"),
            FrontendError::kBadConnectTarget);
  EXPECT_EQ(RouteError("CONNECT [::1]:554 HTTP/1.1\r\nHost: x\r\n\r\n"),
            FrontendError::kBadConnectTarget);
  EXPECT_EQ(RouteError("CONNECT 127.0.0.1:554 HTTP/1.1\r\nHost: x\r\n\r\n"),
            FrontendError::kNoAgent);
  EXPECT_EQ(RouteError("CONNECT Cam-1:554 HTTP/1.1\r\nHost: x\r\n\r\n"),
            FrontendError::kNonCanonicalAgent);
}

TEST(FrontendRouteTest, ConnectPortOutOfRangeIsOnlyAServiceName) {
  RouteDecision d = Route("CONNECT cam-1:70000 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.service, "70000");
  EXPECT_FALSE(d.route.port);
}

TEST(FrontendRouteTest, EmptySuffixDisablesHostForm) {
  RouteDecision d = Route("OPTIONS rtsp://cam-1.localhost/cam-2/s RTSP/1.0\r\n\r\n", "");
  ASSERT_EQ(d.error, FrontendError::kOk);
  EXPECT_EQ(d.route.form, FrontendForm::kRtspPath);
  EXPECT_EQ(d.route.agent_id, "cam-2");
}

TEST(CheckRoutedRequestTest, RewritesPathFormToCameraUrl) {
  std::string target;
  ASSERT_EQ(
      Check(kRtspPathFirst,
            "SETUP rtsp://127.0.0.1:8554/cam-1/stream1/trackID=1?x=1 RTSP/1.0\r\n\r\n", &target),
      FrontendError::kOk);
  EXPECT_EQ(target, "rtsp://127.0.0.1:554/stream1/trackID=1?x=1");
  ASSERT_EQ(Check(kRtspPathFirst, "OPTIONS rtsp://127.0.0.1:8554/cam-1 RTSP/1.0\r\n\r\n", &target),
            FrontendError::kOk);
  EXPECT_EQ(target, "rtsp://127.0.0.1:554/");
  ASSERT_EQ(
      Check(kRtspPathFirst, "OPTIONS rtsp://127.0.0.1:8554/cam-1?q RTSP/1.0\r\n\r\n", &target),
      FrontendError::kOk);
  EXPECT_EQ(target, "rtsp://127.0.0.1:554/?q");
}

TEST(CheckRoutedRequestTest, KeepsUserinfoWhenRewriting) {
  std::string target;
  ASSERT_EQ(
      Check(kRtspPathFirst, "PLAY rtsp://u:p@127.0.0.1:8554/cam-1/s RTSP/1.0\r\n\r\n", &target),
      FrontendError::kOk);
  EXPECT_EQ(target, "rtsp://u:p@127.0.0.1:554/s");
}

TEST(CheckRoutedRequestTest, PassesCameraAndForeignAuthoritiesUnchanged) {
  std::string target = "junk";
  EXPECT_EQ(
      Check(kRtspPathFirst, "SETUP rtsp://127.0.0.1/stream1/trackID=1 RTSP/1.0\r\n\r\n", &target),
      FrontendError::kOk);
  EXPECT_EQ(target, "");
  EXPECT_EQ(Check(kRtspPathFirst, "SETUP rtsp://192.168.1.10/cam-2/x RTSP/1.0\r\n\r\n", &target),
            FrontendError::kOk);
  EXPECT_EQ(target, "");
  EXPECT_EQ(Check(kRtspPathFirst, "GET_PARAMETER * RTSP/1.0\r\n\r\n", &target), FrontendError::kOk);
}

TEST(CheckRoutedRequestTest, TreatsOmittedDefaultPortAsEqual) {
  std::string target;
  ASSERT_EQ(Check("DESCRIBE rtsp://gw/cam-1/s RTSP/1.0\r\n\r\n",
                  "SETUP rtsp://GW:554/cam-1/s/track1 RTSP/1.0\r\n\r\n", &target),
            FrontendError::kOk);
  EXPECT_EQ(target, "rtsp://127.0.0.1:554/s/track1");
}

TEST(CheckRoutedRequestTest, RefusesAnotherAgentInPathAndHostForms) {
  std::string target;
  EXPECT_EQ(
      Check(kRtspPathFirst, "DESCRIBE rtsp://127.0.0.1:8554/cam-2/s RTSP/1.0\r\n\r\n", &target),
      FrontendError::kOtherAgent);
  EXPECT_EQ(Check(kRtspPathFirst, "DESCRIBE rtsp://cam-2.localhost/s RTSP/1.0\r\n\r\n", &target),
            FrontendError::kOtherAgent);
  EXPECT_EQ(
      Check(kRtspHostFirst, "DESCRIBE rtsp://cam-2.localhost:8554/s RTSP/1.0\r\n\r\n", &target),
      FrontendError::kOtherAgent);
  EXPECT_EQ(FrontendErrorStatus(FrontendError::kOtherAgent), 403);
  EXPECT_EQ(FrontendErrorReason(FrontendError::kOtherAgent), "request names another agent");
}

TEST(CheckRoutedRequestTest, RefusesGatewayUrlWithoutAgent) {
  std::string target;
  EXPECT_EQ(Check(kRtspPathFirst, "DESCRIBE rtsp://127.0.0.1:8554/ RTSP/1.0\r\n\r\n", &target),
            FrontendError::kNoAgent);
  EXPECT_EQ(Check(kRtspPathFirst, "DESCRIBE rtsp://127.0.0.1:8554/CAM-1 RTSP/1.0\r\n\r\n", &target),
            FrontendError::kNonCanonicalAgent);
}

TEST(CheckRoutedRequestTest, HostFormNeverRewrites) {
  std::string target;
  EXPECT_EQ(Check(kRtspHostFirst,
                  "SETUP rtsp://cam-1.localhost:8554/stream1/trackID=1 "
                  "RTSP/1.0\r\n\r\n",
                  &target),
            FrontendError::kOk);
  EXPECT_EQ(target, "");
}

TEST(CheckRoutedRequestTest, RefusesProtocolChange) {
  std::string target;
  EXPECT_EQ(Check(kRtspHostFirst, "GET / HTTP/1.1\r\nHost: cam-1.localhost\r\n\r\n", &target),
            FrontendError::kProtocolMismatch);
}

TEST(CheckRoutedRequestTest, RewritesHttpOriginFormInPathForm) {
  std::string target;
  const std::string first = "GET /cam-1/a HTTP/1.1\r\nHost: gw:8554\r\n\r\n";
  ASSERT_EQ(Check(first, "GET /cam-1/cgi-bin/snap.cgi?ch=1 HTTP/1.1\r\nHost: gw:8554\r\n\r\n",
                  &target, "10.0.0.5:80"),
            FrontendError::kOk);
  EXPECT_EQ(target, "/cgi-bin/snap.cgi?ch=1");
  ASSERT_EQ(Check(first, "GET /cam-1 HTTP/1.1\r\nHost: gw:8554\r\n\r\n", &target),
            FrontendError::kOk);
  EXPECT_EQ(target, "/");
  EXPECT_EQ(Check(first, "GET /cam-2/x HTTP/1.1\r\nHost: gw:8554\r\n\r\n", &target),
            FrontendError::kOtherAgent);
  EXPECT_EQ(Check(first, "GET / HTTP/1.1\r\nHost: gw:8554\r\n\r\n", &target),
            FrontendError::kNoAgent);
}

TEST(CheckRoutedRequestTest, RefusesHttpHostOfAnotherAgent) {
  std::string target;
  const std::string first = "GET /a HTTP/1.1\r\nHost: cam-1.localhost:8554\r\n\r\n";
  EXPECT_EQ(Check(first, "GET /b HTTP/1.1\r\nHost: cam-1.localhost:8554\r\n\r\n", &target),
            FrontendError::kOk);
  EXPECT_EQ(target, "");
  EXPECT_EQ(Check(first, "GET /b HTTP/1.1\r\nHost: cam-2.localhost:8554\r\n\r\n", &target),
            FrontendError::kOtherAgent);
  EXPECT_EQ(Check(first, "CONNECT cam-1:80 HTTP/1.1\r\nHost: x\r\n\r\n", &target),
            FrontendError::kMethodNotAllowed);
}

TEST(FrontendResponseTest, BuildsRtspErrorWithEchoedCseq) {
  EXPECT_EQ(BuildErrorResponse(FrontendProtocol::kRtsp, 404, "agent not connected", "3"),
            "RTSP/1.0 404 Not Found (agent not connected)\r\nCSeq: 3\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(BuildErrorResponse(FrontendProtocol::kRtsp, 503, "", ""),
            "RTSP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
}

TEST(FrontendResponseTest, BuildsHttpErrorWithTextBody) {
  EXPECT_EQ(BuildErrorResponse(FrontendProtocol::kHttp, FrontendError::kOtherAgent, ""),
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 28\r\n"
            "Connection: close\r\n\r\nrequest names another agent\n");
}

TEST(FrontendResponseTest, MethodNotAllowedCarriesAllow) {
  std::string rtsp =
      BuildErrorResponse(FrontendProtocol::kRtsp, FrontendError::kMethodNotAllowed, "7");
  EXPECT_NE(rtsp.find("\r\nAllow: OPTIONS, DESCRIBE"), std::string::npos) << rtsp;
  std::string http =
      BuildErrorResponse(FrontendProtocol::kHttp, FrontendError::kMethodNotAllowed, "");
  EXPECT_NE(http.find("\r\nAllow: GET, HEAD"), std::string::npos) << http;
}

TEST(FrontendResponseTest, ErrorResponsesParseAsResponses) {
  for (int i = 1; i <= static_cast<int>(FrontendError::kBadChunkedBody); ++i) {
    auto error = static_cast<FrontendError>(i);
    for (FrontendProtocol protocol : {FrontendProtocol::kRtsp, FrontendProtocol::kHttp}) {
      std::string response = BuildErrorResponse(protocol, error, "12");
      proto::ResponseHead head;
      ASSERT_EQ(proto::ParseResponseHead(response, &head), proto::HeadResult::kComplete)
          << response;
      EXPECT_EQ(head.status, FrontendErrorStatus(error));
      EXPECT_NE(FrontendErrorName(error), "unknown");
      if (protocol == FrontendProtocol::kRtsp) {
        EXPECT_EQ(head.headers.Find("CSeq"), "12");
      } else {
        EXPECT_EQ(response.size() - head.head_bytes,
                  *proto::ParseContentLength(*head.headers.Find("Content-Length")));
      }
    }
  }
}

TEST(FrontendResponseTest, BuildsRedirects) {
  EXPECT_EQ(BuildRedirectResponse(FrontendProtocol::kRtsp, "rtsp://gw2:8554/cam-1/s", "4"),
            "RTSP/1.0 302 Moved Temporarily\r\nCSeq: 4\r\nLocation: rtsp://gw2:8554/cam-1/s\r\n"
            "Content-Length: 0\r\n\r\n");
  EXPECT_EQ(BuildRedirectResponse(FrontendProtocol::kHttp, "http://gw2/cam-1/", ""),
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://gw2/cam-1/\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_FALSE(BuildRedirectResponse(FrontendProtocol::kHttp, "http://x/\r\nSet-Cookie: a", ""));
}

TEST(FrontendResponseTest, SniffsProtocolOfUnparsableFirstLine) {
  EXPECT_EQ(SniffProtocol("DESCRIBE rtsp://x y RTSP/1.0\r\nCSeq"), FrontendProtocol::kRtsp);
  EXPECT_EQ(SniffProtocol("GET / HTTP/1.1\r\n"), FrontendProtocol::kHttp);
  EXPECT_EQ(SniffProtocol("\x16\x03\x01"), FrontendProtocol::kHttp);
}

TEST(FrontendResponseTest, MapsHeadParserResults) {
  EXPECT_EQ(FrontendErrorFromHeadResult(proto::HeadResult::kTooLarge),
            FrontendError::kHeadTooLarge);
  EXPECT_EQ(FrontendErrorFromHeadResult(proto::HeadResult::kTooManyHeaders),
            FrontendError::kTooManyHeaders);
  EXPECT_EQ(FrontendErrorFromHeadResult(proto::HeadResult::kMalformed),
            FrontendError::kMalformedHead);
  EXPECT_EQ(FrontendErrorStatus(FrontendError::kHeadTooLarge), 431);
}

}  // namespace
}  // namespace camtunnel::gateway
