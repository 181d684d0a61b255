// Fuzzes the query-string parser (proto/http_query.h) and checks what handlers rely on: the
// result is deterministic and within the bounds, no decoded key or value holds a control
// character, keys are never empty, and re-encoding every byte of an accepted query parses back
// to the same pairs.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "proto/http_query.h"

namespace {

using namespace camtunnel::proto;

std::string EscapeAll(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back('%');
    out.push_back(kHex[u >> 4]);
    out.push_back(kHex[u & 0xf]);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto q = QueryParams::Parse(raw, &error);
  FUZZ_CHECK(QueryParams::Parse(raw).has_value() == q.has_value());
  if (!q) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  FUZZ_CHECK(raw.size() <= kMaxQueryBytes);
  FUZZ_CHECK(q->pairs().size() <= kMaxQueryParams);
  FUZZ_CHECK(q->empty() == raw.empty());
  std::string again;
  for (const auto& [key, value] : q->pairs()) {
    FUZZ_CHECK(!key.empty());
    FUZZ_CHECK(key.size() <= raw.size() && value.size() <= raw.size());
    for (const char c : key + value) {
      const auto u = static_cast<unsigned char>(c);
      FUZZ_CHECK(u >= 0x20 && u != 0x7f);
    }
    FUZZ_CHECK(q->Get(key).has_value());
    if (!again.empty()) {
      again.push_back('&');
    }
    again += EscapeAll(key) + "=" + EscapeAll(value);
  }
  if (again.size() <= kMaxQueryBytes) {
    const auto round = QueryParams::Parse(again);
    FUZZ_CHECK(round.has_value());
    FUZZ_CHECK(round->pairs() == q->pairs());
  }
  return 0;
}
