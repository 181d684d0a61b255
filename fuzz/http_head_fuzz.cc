// Fuzzes the strict head parser (proto/http_head.h), both request and response forms, and checks
// the properties callers rely on: results are deterministic, a complete head lies inside the
// buffer and the limits, every view points into it, only the first kMaxHeadBytes bytes matter,
// and a complete head is also complete on its own while any shorter prefix needs more.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "proto/http_head.h"

namespace {

using namespace camtunnel::proto;

bool Within(std::string_view inner, std::string_view outer) {
  return inner.empty() || (inner.data() >= outer.data() &&
                           inner.data() + inner.size() <= outer.data() + outer.size());
}

void CheckHeaders(const HeaderList& headers, std::string_view head) {
  FUZZ_CHECK(headers.count <= kMaxHeaders);
  for (size_t i = 0; i < headers.count; ++i) {
    const HeaderField& f = headers.fields[i];
    FUZZ_CHECK(!f.name.empty());
    FUZZ_CHECK(Within(f.name, head) && Within(f.value, head));
    FUZZ_CHECK(f.value.empty() || (f.value.front() != ' ' && f.value.front() != '\t' &&
                                   f.value.back() != ' ' && f.value.back() != '\t'));
    FUZZ_CHECK(headers.Count(f.name) >= 1);
    FUZZ_CHECK(headers.Find(f.name).has_value());
    if (!f.value.empty() && f.value.find(',') == std::string_view::npos) {
      FUZZ_CHECK(HeaderHasToken(f.value, f.value));  // a one-element list contains itself
    }
    if (ParseContentLength(f.value)) {
      FUZZ_CHECK(f.value.size() <= 18);
    }
  }
}

template <typename Head, typename Parse>
void CheckParser(std::string_view buf, Parse parse) {
  Head head;
  const HeadResult result = parse(buf, &head);
  Head again;
  FUZZ_CHECK(parse(buf, &again) == result);

  switch (result) {
    case HeadResult::kNeedMore:
      FUZZ_CHECK(buf.size() < kMaxHeadBytes);
      break;
    case HeadResult::kTooLarge:
      FUZZ_CHECK(buf.size() >= kMaxHeadBytes);
      break;
    case HeadResult::kTooManyHeaders:
    case HeadResult::kMalformed:
      break;
    case HeadResult::kComplete: {
      FUZZ_CHECK(head.head_bytes >= 4 && head.head_bytes <= buf.size());
      FUZZ_CHECK(head.head_bytes <= kMaxHeadBytes);
      FUZZ_CHECK(buf.substr(head.head_bytes - 4, 4) == "\r\n\r\n");
      FUZZ_CHECK(again.head_bytes == head.head_bytes);
      const std::string_view text = buf.substr(0, head.head_bytes);
      CheckHeaders(head.headers, text);
      // The head alone parses the same; cutting its last byte leaves it incomplete.
      Head alone;
      FUZZ_CHECK(parse(text, &alone) == HeadResult::kComplete);
      FUZZ_CHECK(alone.head_bytes == head.head_bytes);
      FUZZ_CHECK(alone.headers.count == head.headers.count);
      FUZZ_CHECK(parse(text.substr(0, text.size() - 1), &alone) == HeadResult::kNeedMore);
      FUZZ_CHECK(parse(text.substr(0, text.size() / 2), &alone) == HeadResult::kNeedMore);
      break;
    }
  }
  // Bytes past the limit never change the verdict.
  if (buf.size() > kMaxHeadBytes) {
    Head cut;
    FUZZ_CHECK(parse(buf.substr(0, kMaxHeadBytes), &cut) == result);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view buf(reinterpret_cast<const char*>(data), size);
  CheckParser<RequestHead>(buf, ParseRequestHead);
  CheckParser<ResponseHead>(buf, ParseResponseHead);

  RequestHead request;
  if (ParseRequestHead(buf, &request) == HeadResult::kComplete) {
    const std::string_view text = buf.substr(0, request.head_bytes);
    FUZZ_CHECK(!request.method.empty() && Within(request.method, text));
    FUZZ_CHECK(!request.target.empty() && Within(request.target, text));
    FUZZ_CHECK(request.target.find(' ') == std::string_view::npos);
  }
  ResponseHead response;
  if (ParseResponseHead(buf, &response) == HeadResult::kComplete) {
    FUZZ_CHECK(response.status >= 100 && response.status <= 999);
    FUZZ_CHECK(Within(response.reason, buf.substr(0, response.head_bytes)));
  }
  return 0;
}
