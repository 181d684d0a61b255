// Fuzzes the upgrade head parsers (proto/upgrade.h) and the identifier and encoding parsers they
// build on. Checked: whatever is accepted is canonical (formatting it gives back the input) and
// survives a build -> parse round trip unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "proto/encoding.h"
#include "proto/identifiers.h"
#include "proto/upgrade.h"

namespace {

using namespace camtunnel::proto;

// Every accepted identifier or encoding has exactly one text form: the input.
void CheckCanonicalForms(std::string_view text) {
  if (auto ref = ParseKeyRef(text)) {
    FUZZ_CHECK(FormatKeyRef(*ref) == text);
    FUZZ_CHECK(IsValidKeyId(ref->key_id));
  }
  if (auto id = ParseTunnelId(text)) {
    FUZZ_CHECK(FormatTunnelId(*id) == text);
  }
  if (auto entry = ParseServiceEntry(text)) {
    FUZZ_CHECK(FormatServiceEntry(*entry) == text);
    FUZZ_CHECK(IsValidServiceName(entry->name) && entry->port != 0);
  }
  if (auto bytes = Base64UrlDecode(text)) {
    FUZZ_CHECK(Base64UrlEncode(*bytes) == text);
  }
  if (auto bytes = HexDecode(text)) {
    std::string lower(text);
    for (char& c : lower) {
      c = (c >= 'A' && c <= 'F') ? static_cast<char>(c + 32) : c;
    }
    FUZZ_CHECK(HexEncode(*bytes) == lower);
  }
  if (IsCanonicalAgentId(text)) {
    FUZZ_CHECK(!text.empty() && text.size() <= 63 && text.front() != '-' && text.back() != '-');
  }
}

UpgradeParse ParseText(const std::string& text) {
  RequestHead head;
  FUZZ_CHECK(ParseRequestHead(text, &head) == HeadResult::kComplete);
  FUZZ_CHECK(head.head_bytes == text.size());
  return ParseUpgradeRequest(head);
}

void CheckRequest(const RequestHead& head) {
  const UpgradeParse parsed = ParseUpgradeRequest(head);
  if (!parsed.request) {
    FUZZ_CHECK(!UpgradeErrorName(parsed.error).empty());
    return;
  }
  const UpgradeRequest& req = *parsed.request;
  FUZZ_CHECK(IsCanonicalAgentId(req.agent_id));
  FUZZ_CHECK(IsValidKeyId(req.key_ref.key_id));
  FUZZ_CHECK(head.method == "GET");
  // Rebuilding the request from what was extracted gives back the same request.
  std::string rebuilt;
  if (req.kind == UpgradeKind::kControl) {
    FUZZ_CHECK(head.target == kControlPath);
    rebuilt = BuildControlRequest("gw", req.agent_id, req.key_ref, req.agent_nonce);
  } else {
    FUZZ_CHECK(head.target == kDataPath);
    rebuilt = BuildDataRequest("gw", req.agent_id, req.key_ref, req.tunnel_id, req.proof);
  }
  const UpgradeParse again = ParseText(rebuilt);
  FUZZ_CHECK(again.request.has_value());
  FUZZ_CHECK(again.request->kind == req.kind && again.request->agent_id == req.agent_id &&
             again.request->key_ref == req.key_ref);
  if (req.kind == UpgradeKind::kControl) {
    FUZZ_CHECK(again.request->agent_nonce == req.agent_nonce);
  } else {
    FUZZ_CHECK(again.request->tunnel_id == req.tunnel_id && again.request->proof == req.proof);
  }
}

void CheckAccept(const ResponseHead& head) {
  const auto accept = ParseControlAccept(head);
  if (!accept) {
    return;
  }
  FUZZ_CHECK(head.status == 101);
  const std::string rebuilt = BuildControlAccept(accept->gateway_nonce, accept->gateway_proof);
  ResponseHead again;
  FUZZ_CHECK(ParseResponseHead(rebuilt, &again) == HeadResult::kComplete);
  const auto accept_again = ParseControlAccept(again);
  FUZZ_CHECK(accept_again.has_value());
  FUZZ_CHECK(accept_again->gateway_nonce == accept->gateway_nonce &&
             accept_again->gateway_proof == accept->gateway_proof);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view buf(reinterpret_cast<const char*>(data), size);
  RequestHead request;
  if (ParseRequestHead(buf, &request) == HeadResult::kComplete) {
    CheckRequest(request);
    for (size_t i = 0; i < request.headers.count; ++i) {
      CheckCanonicalForms(request.headers.fields[i].value);
    }
  }
  ResponseHead response;
  if (ParseResponseHead(buf, &response) == HeadResult::kComplete) {
    CheckAccept(response);
  }
  // Short inputs are also tried as a bare identifier, so the fuzzer reaches those parsers fast.
  if (size <= 128) {
    CheckCanonicalForms(buf);
  }
  return 0;
}
