// `camtunnel-manager reseal`: rewrites every agent's stored secret under the sealing (newest)
// key of the secrets key file, the step of a key rotation after every manager runs with the new
// key (docs/manager.md, "Secrets at rest"); secrets stored in the clear before sealing existed
// are sealed on the way.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "manager/secret_sealer.h"
#include "manager/store_connection.h"

namespace camtunnel::manager {

struct ResealCounts {
  uint64_t resealed = 0;   // every agent row, rewritten
  uint64_t clear = 0;      // of which were stored in the clear
  uint64_t older_key = 0;  // of which were sealed under an older key
};

// `store` must have been opened with `sealer`. Each batch of agents is read and rewritten in one
// transaction, so a manager writing an agent meanwhile (a reactivation, a last-seen time) is
// never overwritten with what was read before. On an error, the batches before it stay resealed
// and the command can simply be run again.
absl::StatusOr<ResealCounts> ResealSecrets(StoreConnection& store, const SecretSealer& sealer,
                                           size_t batch = 1000);

}  // namespace camtunnel::manager
