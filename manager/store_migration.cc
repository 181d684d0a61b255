// See store_migration.h.
#include "manager/store_migration.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace camtunnel::manager {
namespace {

absl::Status Context(const absl::Status& status, std::string_view table) {
  return absl::Status(status.code(),
                      absl::StrCat("copying ", std::string(table), ": ", status.message()));
}

absl::StatusOr<uint64_t> CopyAgents(StoreConnection& from, StoreConnection& to,
                                    const MigrationOptions& options) {
  uint64_t copied = 0;
  AgentQuery query{.limit = options.batch};
  for (;;) {
    auto page = from.ListAgents(query);
    if (!page.ok()) {
      return page.status();
    }
    absl::Status st = to.Transaction([&]() -> absl::Status {
      for (const AgentRecord& a : page->agents) {
        // PutAgent carries the secret (sealed by the destination), state, operator, activation
        // and last-seen time and status; the assignment and location are their own writes.
        if (absl::Status s = to.PutAgent(a); !s.ok()) {
          return s;
        }
        if (a.state == AgentState::kDeactivated) {
          // Drops an assignment a resumed copy's destination may hold, as deactivation does.
          if (absl::Status s = to.SetState(a.agent_id, a.state); !s.ok()) {
            return s;
          }
        } else if (!a.streamer_url.empty()) {
          if (absl::Status s = to.RecordAssignment(a.agent_id, a.streamer_url, options.now_ms);
              !s.ok()) {
            return s;
          }
        }
        if (absl::Status s = to.RecordLocation(a.agent_id, a.located_url); !s.ok()) {
          return s;
        }
      }
      return absl::OkStatus();
    });
    if (!st.ok()) {
      return st;
    }
    copied += page->agents.size();
    if (page->next.empty()) {
      return copied;
    }
    query.after = page->next;
  }
}

absl::StatusOr<uint64_t> CopyClaims(StoreConnection& from, StoreConnection& to, size_t batch) {
  uint64_t copied = 0;
  std::string after;
  for (;;) {
    auto claims = from.ListClaims(after, batch);
    if (!claims.ok()) {
      return claims.status();
    }
    if (claims->empty()) {
      return copied;
    }
    absl::Status st = to.Transaction([&]() -> absl::Status {
      for (const ClaimRecord& c : *claims) {
        if (absl::Status s = to.PutClaim(c); !s.ok()) {
          return s;
        }
      }
      return absl::OkStatus();
    });
    if (!st.ok()) {
      return st;
    }
    copied += claims->size();
    after = claims->back().serial;
  }
}

// An append-only table (activations, audit) read in id order, page by page.
template <typename Row>
class LogReader {
 public:
  using List = std::function<absl::StatusOr<std::vector<Row>>(int64_t after_id, size_t limit)>;
  LogReader(List list, size_t batch) : list_(std::move(list)), batch_(batch) {}

  // The next row, nullopt at the end.
  absl::StatusOr<std::optional<Row>> Next() {
    if (index_ == rows_.size()) {
      if (ended_) {
        return std::optional<Row>();
      }
      auto rows = list_(after_id_, batch_);
      if (!rows.ok()) {
        return rows.status();
      }
      rows_ = std::move(*rows);
      index_ = 0;
      ended_ = rows_.size() < batch_;
      if (rows_.empty()) {
        return std::optional<Row>();
      }
      after_id_ = rows_.back().id;
    }
    return std::optional<Row>(rows_[index_++]);
  }

 private:
  List list_;
  size_t batch_;
  std::vector<Row> rows_;
  size_t index_ = 0;
  int64_t after_id_ = 0;
  bool ended_ = false;
};

bool SameRow(const ActivationEntry& a, const ActivationEntry& b) {
  return a.serial == b.serial && a.source == b.source && a.result == b.result && a.at_ms == b.at_ms;
}

bool SameRow(const AuditEntry& a, const AuditEntry& b) {
  return a.at_ms == b.at_ms && a.actor == b.actor && a.action == b.action &&
         a.subject == b.subject && a.detail == b.detail;
}

struct LogCount {
  uint64_t copied = 0;
  uint64_t skipped = 0;
};

// Copies the source's rows in id order (the destination numbers them anew). The destination's
// rows that repeat the source's first rows, in order, were copied by an earlier run cut short:
// they are skipped, not doubled.
template <typename Row>
absl::StatusOr<LogCount> CopyLog(typename LogReader<Row>::List list_from,
                                 typename LogReader<Row>::List list_to,
                                 const std::function<absl::Status(const Row&)>& write,
                                 StoreConnection& to, size_t batch) {
  LogReader<Row> source(std::move(list_from), batch);
  LogReader<Row> existing(std::move(list_to), batch);
  LogCount count;
  bool in_copied_prefix = true;
  std::vector<Row> pending;
  auto flush = [&]() -> absl::Status {
    if (pending.empty()) {
      return absl::OkStatus();
    }
    absl::Status st = to.Transaction([&]() -> absl::Status {
      for (const Row& row : pending) {
        if (absl::Status s = write(row); !s.ok()) {
          return s;
        }
      }
      return absl::OkStatus();
    });
    if (st.ok()) {
      count.copied += pending.size();
      pending.clear();
    }
    return st;
  };
  for (;;) {
    auto row = source.Next();
    if (!row.ok()) {
      return row.status();
    }
    if (!row->has_value()) {
      break;
    }
    if (in_copied_prefix) {
      auto there = existing.Next();
      if (!there.ok()) {
        return there.status();
      }
      if (there->has_value() && SameRow(**row, **there)) {
        ++count.skipped;
        continue;
      }
      in_copied_prefix = false;
    }
    pending.push_back(std::move(**row));
    if (pending.size() >= batch) {
      if (absl::Status st = flush(); !st.ok()) {
        return st;
      }
    }
  }
  if (absl::Status st = flush(); !st.ok()) {
    return st;
  }
  return count;
}

}  // namespace

absl::StatusOr<MigrationCounts> MigrateStore(StoreConnection& from, StoreConnection& to,
                                             const MigrationOptions& options) {
  MigrationOptions opts = options;
  opts.batch = std::max<size_t>(opts.batch, 1);
  auto held = to.CountAgents(AgentQuery{});
  if (!held.ok()) {
    return Context(held.status(), "agents");
  }
  if (*held > 0 && !opts.force) {
    return absl::FailedPreconditionError(
        absl::StrCat("the destination already holds ", *held,
                     " agents (give --force to copy into it anyway, e.g. to resume a copy)"));
  }
  MigrationCounts counts;
  auto agents = CopyAgents(from, to, opts);
  if (!agents.ok()) {
    return Context(agents.status(), "agents");
  }
  counts.agents = *agents;
  auto claims = CopyClaims(from, to, opts.batch);
  if (!claims.ok()) {
    return Context(claims.status(), "claims");
  }
  counts.claims = *claims;
  auto activations = CopyLog<ActivationEntry>(
      [&from](int64_t after, size_t limit) { return from.ListActivations(after, limit); },
      [&to](int64_t after, size_t limit) { return to.ListActivations(after, limit); },
      [&to](const ActivationEntry& e) { return to.RecordActivation(e); }, to, opts.batch);
  if (!activations.ok()) {
    return Context(activations.status(), "activations");
  }
  counts.activations = activations->copied;
  counts.activations_skipped = activations->skipped;
  auto audit = CopyLog<AuditEntry>(
      [&from](int64_t after, size_t limit) { return from.ListAudit(after, limit); },
      [&to](int64_t after, size_t limit) { return to.ListAudit(after, limit); },
      [&to](const AuditEntry& e) { return to.Audit(e); }, to, opts.batch);
  if (!audit.ok()) {
    return Context(audit.status(), "audit");
  }
  counts.audit = audit->copied;
  counts.audit_skipped = audit->skipped;
  // Command rows are not copied (transient), but their ids must go on rising: every agent keeps
  // the highest one it acted on and takes a lower one for a command already done.
  auto last = from.LastCommandId();
  if (!last.ok()) {
    return Context(last.status(), "command ids");
  }
  if (absl::Status st = to.KeepCommandIdsAbove(*last); !st.ok()) {
    return Context(st, "command ids");
  }
  counts.command_id_floor = *last;
  return counts;
}

}  // namespace camtunnel::manager
