// Agent secrets sealed at rest: what the state database stores in an agent's secret column, so
// a dump of it (a backup, a replica, a leaked file) is not a set of fleet credentials.
//
// Sealed form, 62 bytes: version (1) | key id (1) | nonce (12) | ciphertext (32) | tag (16),
// ChaCha20-Poly1305 (proto::SealDigest) under the key named by the key id, associated data
// LP("camtunnel-manager agent-secret") LP(agent id) LP(version | key id): a sealed secret copied
// into another agent's row does not open. The newest key seals; any key of the file opens, which
// is how keys rotate (docs/manager.md, "Secrets at rest"). A stored value of exactly 32 bytes is
// a secret written before sealing existed: it opens as clear text and is counted, so the
// operator knows to run `camtunnel-manager reseal`.
//
// Every storage backend calls SealForStore when it writes an agent and OpenFromStore for every
// agent it reads; the sealer is shared by all of a store's connections (thread-safe, immutable
// but for its counters).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/manager_link.h"

namespace camtunnel::manager {

class SecretSealer {
 public:
  using Key = std::array<uint8_t, 32>;
  struct KeyEntry {
    uint8_t id = 0;
    Key key{};
  };

  // One key per line, `KEYID HEX64` (KEYID 0..255, decimal), '#' starts a comment; the last key
  // seals. Refused: a file that group or others may read or write, a missing, empty or malformed
  // file, a key id given twice.
  static absl::StatusOr<SecretSealer> FromKeyFile(const std::string& path);
  // `keys` in file order (the last one seals); ids distinct, at least one key.
  static absl::StatusOr<SecretSealer> FromKeys(std::vector<KeyEntry> keys);

  ~SecretSealer();
  SecretSealer(SecretSealer&& other) noexcept;
  SecretSealer& operator=(SecretSealer&&) = delete;
  SecretSealer(const SecretSealer&) = delete;
  SecretSealer& operator=(const SecretSealer&) = delete;

  static constexpr uint8_t kVersion = 1;
  static constexpr size_t kSealedBytes = 1 + 1 + 12 + 32 + 16;

  uint8_t sealing_key_id() const { return keys_.back().id; }
  size_t key_count() const { return keys_.size(); }

  // A fresh random nonce per call: sealing the same secret twice gives different bytes.
  std::vector<uint8_t> Seal(std::string_view agent_id, const proto::AgentSecret& secret) const;
  // DATA_LOSS naming the agent when `stored` does not open: forged, corrupted, another agent's,
  // sealed under a key this file no longer holds, or of an unknown version.
  absl::StatusOr<proto::AgentSecret> Open(std::string_view agent_id,
                                          std::span<const uint8_t> stored) const;

  // Secrets opened since start-up that were stored in the clear (written before sealing), and
  // that were sealed under a key older than the sealing key: both are what `reseal` rewrites.
  uint64_t opened_clear() const { return opened_clear_.load(std::memory_order_relaxed); }
  uint64_t opened_older_key() const { return opened_older_key_.load(std::memory_order_relaxed); }

 private:
  explicit SecretSealer(std::vector<KeyEntry> keys) : keys_(std::move(keys)) {}

  std::vector<KeyEntry> keys_;
  mutable std::atomic<uint64_t> opened_clear_{0};
  mutable std::atomic<uint64_t> opened_older_key_{0};
};

// `camtunnel-manager new-secrets-key`: appends a fresh random key to the key file (creating it,
// mode 0600), as key `key_id` or, without one, one above the highest id in the file. Returns the
// id. The file is checked as FromKeyFile checks it first, so a loose or malformed file is never
// extended.
absl::StatusOr<uint8_t> AppendNewKey(const std::string& path, std::optional<int> key_id);

// What a backend stores in an agent's secret column: sealed under `sealer`'s newest key, or the
// 32 clear bytes when `sealer` is null (a manager started without --secrets_key_file, tests).
std::vector<uint8_t> SealForStore(const SecretSealer* sealer, std::string_view agent_id,
                                  const proto::AgentSecret& secret);
// The secret from an agent's stored column. With a null `sealer`, only clear 32-byte values
// open. DATA_LOSS naming the agent otherwise: a backend returns it as the read's error, never a
// zero secret.
absl::StatusOr<proto::AgentSecret> OpenFromStore(const SecretSealer* sealer,
                                                 std::string_view agent_id,
                                                 std::span<const uint8_t> stored);

}  // namespace camtunnel::manager
