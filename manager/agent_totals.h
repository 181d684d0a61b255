// The `total` of the admin API's agent pages, remembered while a client pages: counting every
// match of a filter over a fleet of 100,000 agents costs more than the page itself, and a client
// walking a thousand pages would count a thousand times. A first page (no cursor) always counts
// afresh; later pages reuse a count of the same filters up to kMaxAgeMs old (the fleet changes
// while a client pages anyway). On the manager's shard only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "manager/store_records.h"

namespace camtunnel::manager {

class AgentTotals {
 public:
  static constexpr uint64_t kMaxAgeMs = 10000;
  static constexpr size_t kMaxFilters = 256;

  // The remembered total for `query`'s filters, if paging (a cursor) and fresh enough.
  std::optional<uint64_t> Find(const AgentQuery& query, uint64_t now_ms) const {
    if (query.after.empty()) {
      return std::nullopt;
    }
    auto it = totals_.find(Key(query));
    if (it == totals_.end() || now_ms - it->second.at_ms > kMaxAgeMs) {
      return std::nullopt;
    }
    return it->second.total;
  }

  void Remember(const AgentQuery& query, uint64_t total, uint64_t now_ms) {
    if (totals_.size() >= kMaxFilters) {
      totals_.clear();  // many distinct filters at once: start over rather than grow
    }
    totals_[Key(query)] = {total, now_ms};
  }

 private:
  struct Entry {
    uint64_t total = 0;
    uint64_t at_ms = 0;
  };
  static std::string Key(const AgentQuery& q) {
    return absl::StrCat(q.state ? static_cast<int>(*q.state) : -1, "|", q.streamer_url, "|",
                        q.operator_id, "|", q.seen_since_ms > 0, q.seen_before_ms > 0);
  }

  std::map<std::string, Entry> totals_;
};

}  // namespace camtunnel::manager
