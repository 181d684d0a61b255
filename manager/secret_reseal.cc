// See secret_reseal.h.
#include "manager/secret_reseal.h"

#include <algorithm>
#include <string>

namespace camtunnel::manager {

absl::StatusOr<ResealCounts> ResealSecrets(StoreConnection& store, const SecretSealer& sealer,
                                           size_t batch) {
  ResealCounts total;
  AgentQuery query{.limit = std::max<size_t>(batch, 1)};
  for (;;) {
    // Set by the transaction's body, which may run more than once (a retried conflict): only
    // the committed run counts.
    ResealCounts page_counts;
    std::string next;
    absl::Status st = store.Transaction([&]() -> absl::Status {
      page_counts = {};
      auto page = store.ListAgents(query);
      if (!page.ok()) {
        return page.status();
      }
      for (const AgentRecord& listed : page->agents) {
        // Read again one by one: the sealer's counters then say how this row was stored (a
        // page read may open a row beyond the page, to know whether there is a next one).
        const uint64_t clear_before = sealer.opened_clear();
        const uint64_t older_before = sealer.opened_older_key();
        auto agent = store.FindAgent(listed.agent_id);
        if (!agent.ok()) {
          return agent.status();
        }
        if (!agent->has_value()) {
          continue;
        }
        page_counts.clear += sealer.opened_clear() - clear_before;
        page_counts.older_key += sealer.opened_older_key() - older_before;
        if (absl::Status s = store.PutAgent(**agent); !s.ok()) {
          return s;
        }
        ++page_counts.resealed;
      }
      next = page->next;
      return absl::OkStatus();
    });
    if (!st.ok()) {
      return st;
    }
    total.resealed += page_counts.resealed;
    total.clear += page_counts.clear;
    total.older_key += page_counts.older_key;
    if (next.empty()) {
      return total;
    }
    query.after = next;
  }
}

}  // namespace camtunnel::manager
