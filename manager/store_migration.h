// `camtunnel-manager migrate`: copies a manager's whole state from one store to another (SQLite
// to PostgreSQL when a fleet outgrows one manager, or between files), through StoreConnection
// only, so any pair of backends works. Agents' secrets are opened by the source connection's
// sealer and sealed again by the destination's.
//
// Each table is copied in batches, one destination transaction per batch, in key order (agents
// by id, claims by serial, activations and audit by id). A copy cut short is run again with
// `force`: agents and claims are upserts, and the activation and audit rows the destination
// already holds as a prefix of the source's are recognised and skipped, so nothing is doubled.
//
// The link registry and commands in flight are not copied: they are transient (the managers are
// stopped during a migration, and every agent's link is claimed again when it relinks).
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "manager/store_connection.h"

namespace camtunnel::manager {

struct MigrationOptions {
  // Copy into a destination that already holds agents (a resumed copy). Agents and claims of
  // both are overwritten by the source's; the destination's own are kept, and so is an
  // assignment the destination holds for an active agent the source has none for.
  bool force = false;
  size_t batch = 1000;  // rows per destination transaction
  // Stored as the time of each copied assignment (the interface does not carry the original).
  int64_t now_ms = 0;
};

struct MigrationCounts {
  uint64_t agents = 0;
  uint64_t claims = 0;
  uint64_t activations = 0;
  uint64_t audit = 0;
  // Rows a resumed copy found already in the destination.
  uint64_t activations_skipped = 0;
  uint64_t audit_skipped = 0;
  // The destination issues command ids above this (the source's highest).
  int64_t command_id_floor = 0;
};

// FAILED_PRECONDITION when `to` holds agents and `options.force` is not set. On an error, the
// batches committed before it stay in the destination.
absl::StatusOr<MigrationCounts> MigrateStore(StoreConnection& from, StoreConnection& to,
                                             const MigrationOptions& options);

}  // namespace camtunnel::manager
