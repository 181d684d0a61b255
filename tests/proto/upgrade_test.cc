// Upgrade heads (PROTOCOL.md sections 4 and 8): the builders produce the contract's exact bytes,
// and the parsers accept them and reject every malformed or ambiguous variant.
#include "proto/upgrade.h"

#include <gtest/gtest.h>

#include <string>

#include "proto/encoding.h"

namespace camtunnel::proto {
namespace {

const KeyRef kKeyRef{"k1", 1767225600};

Nonce TestNonce(uint8_t seed) {
  Nonce n;
  for (size_t i = 0; i < n.size(); ++i) {
    n[i] = static_cast<uint8_t>(seed + i);
  }
  return n;
}

Digest TestProof() {
  Digest d;
  for (size_t i = 0; i < d.size(); ++i) {
    d[i] = static_cast<uint8_t>(0xf0 + i);
  }
  return d;
}

// Holds the text so the head's views stay valid.
struct ParsedRequest {
  explicit ParsedRequest(std::string s) : text(std::move(s)) {
    EXPECT_EQ(ParseRequestHead(text, &head), HeadResult::kComplete) << text;
  }
  std::string text;
  RequestHead head;
};

UpgradeParse Parse(const std::string& text) {
  ParsedRequest p(text);
  return ParseUpgradeRequest(p.head);
}

UpgradeError ErrorOf(const std::string& text) {
  UpgradeParse r = Parse(text);
  EXPECT_FALSE(r.request) << text;
  return r.error;
}

std::string ControlHead(std::string_view extra_headers = "") {
  return "GET /camtunnel/v1/control HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\n"
         "Upgrade: camtunnel/1\r\nCamtunnel-Agent: cam-42\r\nCamtunnel-Key: k1.1767225600\r\n"
         "Camtunnel-Nonce: AAECAwQFBgcICQoLDA0ODw\r\n" +
         std::string(extra_headers) + "\r\n";
}

// A control head with one header line replaced (or removed when `line` is empty).
std::string ControlHeadWith(std::string_view name, std::string_view line) {
  std::string head = ControlHead();
  size_t start = head.find(std::string(name) + ":");
  EXPECT_NE(start, std::string::npos);
  size_t end = head.find("\r\n", start) + 2;
  head.replace(start, end - start, line.empty() ? "" : std::string(line) + "\r\n");
  return head;
}

std::string DataHeadWith(std::string_view name, std::string_view line) {
  std::string head = BuildDataRequest("gw", "cam-42", kKeyRef, 0x00a3f09c11d2e4b7, TestProof());
  size_t start = head.find(std::string(name) + ":");
  EXPECT_NE(start, std::string::npos);
  size_t end = head.find("\r\n", start) + 2;
  head.replace(start, end - start, line.empty() ? "" : std::string(line) + "\r\n");
  return head;
}

TEST(BuildUpgradeTest, BuildsControlRequestExactly) {
  EXPECT_EQ(BuildControlRequest("streamer.example.com", "cam-42", kKeyRef, TestNonce(0)),
            "GET /camtunnel/v1/control HTTP/1.1\r\n"
            "Host: streamer.example.com\r\n"
            "Connection: Upgrade\r\n"
            "Upgrade: camtunnel/1\r\n"
            "Camtunnel-Agent: cam-42\r\n"
            "Camtunnel-Key: k1.1767225600\r\n"
            "Camtunnel-Nonce: AAECAwQFBgcICQoLDA0ODw\r\n"
            "\r\n");
}

TEST(BuildUpgradeTest, BuildsDataRequestExactly) {
  EXPECT_EQ(
      BuildDataRequest("streamer.example.com", "cam-42", kKeyRef, 0x00a3f09c11d2e4b7, TestProof()),
      "GET /camtunnel/v1/data HTTP/1.1\r\n"
      "Host: streamer.example.com\r\n"
      "Connection: Upgrade\r\n"
      "Upgrade: camtunnel/1\r\n"
      "Camtunnel-Agent: cam-42\r\n"
      "Camtunnel-Key: k1.1767225600\r\n"
      "Camtunnel-Tunnel: 00a3f09c11d2e4b7\r\n"
      "Camtunnel-Proof: " +
          Base64UrlEncode(TestProof()) +
          "\r\n"
          "\r\n");
}

TEST(BuildUpgradeTest, BuildsControlAcceptExactly) {
  EXPECT_EQ(BuildControlAccept(TestNonce(0), TestProof()),
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Connection: Upgrade\r\n"
            "Upgrade: camtunnel/1\r\n"
            "Camtunnel-Nonce: AAECAwQFBgcICQoLDA0ODw\r\n"
            "Camtunnel-Proof: 8PHy8_T19vf4-fr7_P3-_wABAgMEBQYHCAkKCwwNDg8\r\n"
            "\r\n");
}

TEST(BuildUpgradeTest, BuildsDataAcceptExactly) {
  EXPECT_EQ(
      BuildDataAccept(),
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: camtunnel/1\r\n\r\n");
}

TEST(BuildUpgradeTest, BuildsErrorWithStandardReasonAndLengthOfBody) {
  EXPECT_EQ(BuildUpgradeError(400, "bad nonce"),
            "HTTP/1.1 400 Bad Request\r\n"
            "Content-Type: text/plain\r\n"
            "Content-Length: 10\r\n"
            "Connection: close\r\n"
            "\r\n"
            "bad nonce\n");
}

TEST(BuildUpgradeTest, UsesStandardReasonPhrases) {
  EXPECT_EQ(BuildUpgradeError(401, "x").substr(0, 26), "HTTP/1.1 401 Unauthorized\r");
  EXPECT_EQ(BuildUpgradeError(403, "x").substr(0, 23), "HTTP/1.1 403 Forbidden\r");
  EXPECT_EQ(BuildUpgradeError(404, "x").substr(0, 23), "HTTP/1.1 404 Not Found\r");
  EXPECT_EQ(BuildUpgradeError(431, "x").substr(0, 45),
            "HTTP/1.1 431 Request Header Fields Too Large\r");
  EXPECT_EQ(BuildUpgradeError(503, "x").substr(0, 33), "HTTP/1.1 503 Service Unavailable\r");
}

TEST(BuildUpgradeTest, ErrorAnswerParsesAsResponse) {
  std::string text = BuildUpgradeError(503, "draining");
  ResponseHead head;
  ASSERT_EQ(ParseResponseHead(text, &head), HeadResult::kComplete);
  EXPECT_EQ(head.status, 503);
  EXPECT_EQ(ParseContentLength(*head.headers.Find("Content-Length")),
            text.size() - head.head_bytes);
  EXPECT_TRUE(HeaderHasToken(*head.headers.Find("Connection"), "close"));
}

TEST(ParseUpgradeTest, ParsesBuiltControlRequest) {
  UpgradeParse r = Parse(BuildControlRequest("gw:443", "cam-42", kKeyRef, TestNonce(7)));
  ASSERT_TRUE(r.request);
  EXPECT_EQ(r.request->kind, UpgradeKind::kControl);
  EXPECT_EQ(r.request->agent_id, "cam-42");
  EXPECT_EQ(r.request->key_ref, kKeyRef);
  EXPECT_EQ(r.request->agent_nonce, TestNonce(7));
}

TEST(ParseUpgradeTest, ParsesBuiltDataRequest) {
  UpgradeParse r =
      Parse(BuildDataRequest("gw", "cam-42", kKeyRef, 0x00a3f09c11d2e4b7, TestProof()));
  ASSERT_TRUE(r.request);
  EXPECT_EQ(r.request->kind, UpgradeKind::kData);
  EXPECT_EQ(r.request->agent_id, "cam-42");
  EXPECT_EQ(r.request->tunnel_id, 0x00a3f09c11d2e4b7u);
  EXPECT_EQ(r.request->proof, TestProof());
}

TEST(ParseUpgradeTest, AcceptsAnyHeaderOrderAndNameCase) {
  UpgradeParse r = Parse(
      "GET /camtunnel/v1/control HTTP/1.1\r\ncamtunnel-nonce: AAECAwQFBgcICQoLDA0ODw\r\n"
      "UPGRADE: camtunnel/1\r\nCAMTUNNEL-KEY: k1.1767225600\r\nconnection: upgrade\r\n"
      "Camtunnel-agent: cam-42\r\n\r\n");
  EXPECT_TRUE(r.request);
}

TEST(ParseUpgradeTest, AcceptsTokensWithinLists) {
  UpgradeParse r = Parse(ControlHeadWith("Connection", "Connection: keep-alive, Upgrade"));
  EXPECT_TRUE(r.request);
  r = Parse(ControlHeadWith("Upgrade", "Upgrade: websocket, camtunnel/1"));
  EXPECT_TRUE(r.request);
}

TEST(ParseUpgradeTest, AcceptsConnectionTokenOnSecondFieldLine) {
  UpgradeParse r =
      Parse(ControlHeadWith("Connection", "Connection: keep-alive\r\nConnection: Upgrade"));
  EXPECT_TRUE(r.request);
}

TEST(ParseUpgradeTest, IgnoresUnknownCamtunnelHeaders) {
  EXPECT_TRUE(Parse(ControlHead("Camtunnel-Future: 1\r\n")).request);
}

TEST(ParseUpgradeTest, RejectsMethodOtherThanGet) {
  std::string head = ControlHead();
  head.replace(0, 3, "POST");
  EXPECT_EQ(ErrorOf(head), UpgradeError::kNotUpgrade);
  head = ControlHead();
  head.replace(0, 3, "get");
  EXPECT_EQ(ErrorOf(head), UpgradeError::kNotUpgrade);
}

TEST(ParseUpgradeTest, RejectsHttp10) {
  std::string head = ControlHead();
  head.replace(head.find("HTTP/1.1"), 8, "HTTP/1.0");
  EXPECT_EQ(ErrorOf(head), UpgradeError::kNotUpgrade);
}

TEST(ParseUpgradeTest, RejectsOtherPaths) {
  for (std::string_view path : {"/camtunnel/v1/control/", "/camtunnel/v1/control?x=1",
                                "/camtunnel/v1/Control", "/camtunnel/v2/data", "/"}) {
    std::string head = ControlHead();
    head.replace(4, kControlPath.size(), path);
    EXPECT_EQ(ErrorOf(head), UpgradeError::kNotUpgrade) << path;
  }
}

TEST(ParseUpgradeTest, RejectsMissingUpgradeHeader) {
  EXPECT_EQ(ErrorOf(ControlHeadWith("Upgrade", "")), UpgradeError::kNotUpgrade);
}

TEST(ParseUpgradeTest, RejectsOtherUpgradeProtocol) {
  EXPECT_EQ(ErrorOf(ControlHeadWith("Upgrade", "Upgrade: websocket")), UpgradeError::kNotUpgrade);
  EXPECT_EQ(ErrorOf(ControlHeadWith("Upgrade", "Upgrade: camtunnel/2")), UpgradeError::kNotUpgrade);
}

TEST(ParseUpgradeTest, RejectsConnectionWithoutUpgrade) {
  EXPECT_EQ(ErrorOf(ControlHeadWith("Connection", "")), UpgradeError::kNotUpgrade);
  EXPECT_EQ(ErrorOf(ControlHeadWith("Connection", "Connection: keep-alive")),
            UpgradeError::kNotUpgrade);
}

TEST(ParseUpgradeTest, RejectsUppercaseAgentId) {
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Agent", "Camtunnel-Agent: Cam-42")),
            UpgradeError::kBadAgentId);
}

TEST(ParseUpgradeTest, RejectsMissingAgentId) {
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Agent", "")), UpgradeError::kBadAgentId);
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Agent", "Camtunnel-Agent:")),
            UpgradeError::kBadAgentId);
}

TEST(ParseUpgradeTest, RejectsBadKeyRef) {
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Key", "Camtunnel-Key: k1")),
            UpgradeError::kBadKeyRef);
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Key", "Camtunnel-Key: k1.01")),
            UpgradeError::kBadKeyRef);
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Key", "")), UpgradeError::kBadKeyRef);
}

TEST(ParseUpgradeTest, RejectsNonceOfWrongLength) {
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Nonce", "Camtunnel-Nonce: AAECAwQFBgcICQoLDA0O")),
            UpgradeError::kBadNonce);
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Nonce", "Camtunnel-Nonce: AAECAwQFBgcICQoLDA0ODxA")),
            UpgradeError::kBadNonce);
}

TEST(ParseUpgradeTest, RejectsPaddedOrNonCanonicalNonce) {
  EXPECT_EQ(
      ErrorOf(ControlHeadWith("Camtunnel-Nonce", "Camtunnel-Nonce: AAECAwQFBgcICQoLDA0ODw==")),
      UpgradeError::kBadNonce);
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Nonce", "Camtunnel-Nonce: AAECAwQFBgcICQoLDA0ODx")),
            UpgradeError::kBadNonce);
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Nonce", "Camtunnel-Nonce: AAECAwQFBgcICQoLDA0OD+")),
            UpgradeError::kBadNonce);
}

TEST(ParseUpgradeTest, RejectsMissingNonce) {
  EXPECT_EQ(ErrorOf(ControlHeadWith("Camtunnel-Nonce", "")), UpgradeError::kBadNonce);
}

TEST(ParseUpgradeTest, RejectsDuplicateAgentHeader) {
  EXPECT_EQ(ErrorOf(ControlHead("Camtunnel-Agent: cam-43\r\n")), UpgradeError::kDuplicateHeader);
}

TEST(ParseUpgradeTest, RejectsDuplicateHeaderEvenWithSameValueAndOtherCase) {
  EXPECT_EQ(ErrorOf(ControlHead("camtunnel-nonce: AAECAwQFBgcICQoLDA0ODw\r\n")),
            UpgradeError::kDuplicateHeader);
}

TEST(ParseUpgradeTest, RejectsDuplicateCamtunnelHeaderNotUsedByThisKind) {
  EXPECT_EQ(ErrorOf(ControlHead("Camtunnel-Proof: a\r\nCamtunnel-Proof: b\r\n")),
            UpgradeError::kDuplicateHeader);
}

TEST(ParseUpgradeTest, RejectsUppercaseTunnelId) {
  EXPECT_EQ(ErrorOf(DataHeadWith("Camtunnel-Tunnel", "Camtunnel-Tunnel: 00A3F09C11D2E4B7")),
            UpgradeError::kBadTunnelId);
}

TEST(ParseUpgradeTest, RejectsMissingTunnelId) {
  EXPECT_EQ(ErrorOf(DataHeadWith("Camtunnel-Tunnel", "")), UpgradeError::kBadTunnelId);
}

TEST(ParseUpgradeTest, RejectsProofOfWrongLength) {
  std::string proof = Base64UrlEncode(TestProof());
  EXPECT_EQ(ErrorOf(DataHeadWith("Camtunnel-Proof", "Camtunnel-Proof: " + proof.substr(1))),
            UpgradeError::kBadProofSyntax);
  EXPECT_EQ(ErrorOf(DataHeadWith("Camtunnel-Proof", "Camtunnel-Proof: " + proof + "A")),
            UpgradeError::kBadProofSyntax);
}

TEST(ParseUpgradeTest, RejectsPaddedProof) {
  std::string proof = Base64UrlEncode(TestProof());
  EXPECT_EQ(ErrorOf(DataHeadWith("Camtunnel-Proof", "Camtunnel-Proof: " + proof + "=")),
            UpgradeError::kBadProofSyntax);
}

TEST(ParseUpgradeTest, RejectsMissingProof) {
  EXPECT_EQ(ErrorOf(DataHeadWith("Camtunnel-Proof", "")), UpgradeError::kBadProofSyntax);
}

TEST(ParseUpgradeTest, RejectsDuplicateProof) {
  std::string head = DataHeadWith("Camtunnel-Proof", "");
  std::string proof = "Camtunnel-Proof: " + Base64UrlEncode(TestProof()) + "\r\n";
  head.insert(head.size() - 2, proof + proof);
  EXPECT_EQ(ErrorOf(head), UpgradeError::kDuplicateHeader);
}

TEST(UpgradeErrorNameTest, NamesEveryError) {
  EXPECT_EQ(UpgradeErrorName(UpgradeError::kNotUpgrade), "not-upgrade");
  EXPECT_EQ(UpgradeErrorName(UpgradeError::kBadAgentId), "bad-agent-id");
  EXPECT_EQ(UpgradeErrorName(UpgradeError::kBadKeyRef), "bad-key-ref");
  EXPECT_EQ(UpgradeErrorName(UpgradeError::kBadNonce), "bad-nonce");
  EXPECT_EQ(UpgradeErrorName(UpgradeError::kBadTunnelId), "bad-tunnel-id");
  EXPECT_EQ(UpgradeErrorName(UpgradeError::kBadProofSyntax), "bad-proof-syntax");
  EXPECT_EQ(UpgradeErrorName(UpgradeError::kDuplicateHeader), "duplicate-header");
}

// Agent side: the 101 of a control connection.
std::optional<ControlAccept> ParseAccept(const std::string& text) {
  ResponseHead head;
  EXPECT_EQ(ParseResponseHead(text, &head), HeadResult::kComplete) << text;
  return ParseControlAccept(head);
}

std::string AcceptWith(std::string_view name, std::string_view line) {
  std::string head = BuildControlAccept(TestNonce(3), TestProof());
  size_t start = head.find(std::string(name) + ":");
  EXPECT_NE(start, std::string::npos);
  size_t end = head.find("\r\n", start) + 2;
  head.replace(start, end - start, line.empty() ? "" : std::string(line) + "\r\n");
  return head;
}

TEST(ControlAcceptTest, ParsesBuiltAccept) {
  auto accept = ParseAccept(BuildControlAccept(TestNonce(3), TestProof()));
  ASSERT_TRUE(accept);
  EXPECT_EQ(accept->gateway_nonce, TestNonce(3));
  EXPECT_EQ(accept->gateway_proof, TestProof());
}

TEST(ControlAcceptTest, RejectsStatusOtherThan101) {
  std::string text = BuildControlAccept(TestNonce(3), TestProof());
  text.replace(9, 3, "200");
  EXPECT_FALSE(ParseAccept(text));
}

TEST(ControlAcceptTest, RejectsMissingUpgrade) {
  EXPECT_FALSE(ParseAccept(AcceptWith("Upgrade", "")));
  EXPECT_FALSE(ParseAccept(AcceptWith("Connection", "")));
}

TEST(ControlAcceptTest, RejectsMissingNonceOrProof) {
  EXPECT_FALSE(ParseAccept(AcceptWith("Camtunnel-Nonce", "")));
  EXPECT_FALSE(ParseAccept(AcceptWith("Camtunnel-Proof", "")));
}

TEST(ControlAcceptTest, RejectsMalformedNonceOrProof) {
  EXPECT_FALSE(ParseAccept(AcceptWith("Camtunnel-Nonce", "Camtunnel-Nonce: AAAA")));
  EXPECT_FALSE(ParseAccept(AcceptWith("Camtunnel-Proof", "Camtunnel-Proof: AAAA")));
}

TEST(ControlAcceptTest, RejectsDuplicateProof) {
  std::string text = BuildControlAccept(TestNonce(3), TestProof());
  text.insert(text.size() - 2, "Camtunnel-Proof: " + Base64UrlEncode(Digest{}) + "\r\n");
  EXPECT_FALSE(ParseAccept(text));
}

}  // namespace
}  // namespace camtunnel::proto
