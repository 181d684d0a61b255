#include "agentsim/live_status.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace camtunnel::agentsim {

LiveStatus& LiveStatus::operator+=(const LiveStatus& o) {
  up += o.up;
  agents += o.agents;
  streams += o.streams;
  opens += o.opens;
  errors += o.errors;
  bytes += o.bytes;
  return *this;
}

std::string FormatStatusLine(const LiveStatus& s) {
  return absl::StrFormat(
      "agentsim: status up=%d agents=%d streams=%d opens=%d errors=%d bytes=%d\n", s.up, s.agents,
      s.streams, s.opens, s.errors, s.bytes);
}

std::optional<LiveStatus> ParseStatusLine(std::string_view text) {
  // This absl's string_view is its own type, not std's.
  absl::string_view line(text.data(), text.size());
  constexpr absl::string_view kHead = "agentsim: status ";
  if (!absl::StartsWith(line, kHead)) {
    return std::nullopt;
  }
  line.remove_prefix(kHead.size());
  LiveStatus s;
  struct Field {
    absl::string_view name;
    uint64_t* value;
  };
  const Field fields[] = {{"up", &s.up},       {"agents", &s.agents}, {"streams", &s.streams},
                          {"opens", &s.opens}, {"errors", &s.errors}, {"bytes", &s.bytes}};
  size_t seen = 0;
  for (absl::string_view kv : absl::StrSplit(absl::StripTrailingAsciiWhitespace(line), ' ')) {
    const std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, '=');
    for (const Field& f : fields) {
      if (p.first == f.name) {
        if (!absl::SimpleAtoi(p.second, f.value)) {
          return std::nullopt;
        }
        ++seen;
      }
    }
  }
  if (seen != std::size(fields)) {
    return std::nullopt;
  }
  return s;
}

}  // namespace camtunnel::agentsim
