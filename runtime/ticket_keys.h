// Session ticket keys shared by every shard's SSL_CTX and kept across restarts (DESIGN "TLS"):
// a fleet that reconnects after a gateway restart resumes its TLS sessions (about a tenth of a
// full handshake's CPU) on whichever shard its connection lands.
//
// Keys form an immutable snapshot {current, previous...}: a handshake on any shard's thread
// reads one snapshot (an atomic shared_ptr load), never a key being replaced. New tickets are
// sealed with the current key; tickets sealed with a previous key are still accepted and
// renewed; older ones fall back to a full handshake. Rotate() (from any thread: the operator's
// reload, a timer) pushes a new current key and drops the oldest.
//
// Keys file (0600): one key per line, 160 hex digits = name (16 bytes) | AES-256 key (32) |
// HMAC-SHA256 key (32), current first. A restart that loads the same file resumes every
// ticket it issued before.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace camtunnel::runtime {

struct TicketKey {
  std::array<uint8_t, 16> name{};
  std::array<uint8_t, 32> aes_key{};
  std::array<uint8_t, 32> hmac_key{};

  static TicketKey Random();
};

class TicketKeys {
 public:
  // Keys kept: the current one and this many previous ones.
  static constexpr size_t kPrevious = 1;

  explicit TicketKeys(std::vector<TicketKey> keys);  // current first; at least one
  static std::unique_ptr<TicketKeys> Generate() {
    return std::make_unique<TicketKeys>(std::vector<TicketKey>{TicketKey::Random()});
  }
  // Parses a keys file's text (format above).
  static absl::StatusOr<std::unique_ptr<TicketKeys>> Parse(const std::string& text);
  static absl::StatusOr<std::unique_ptr<TicketKeys>> LoadFile(const std::string& path);
  // Writes the current snapshot atomically (temp file, fsync, rename; mode 0600).
  absl::Status SaveFile(const std::string& path) const;

  // Any thread.
  void Rotate(const TicketKey& next);
  void Replace(std::vector<TicketKey> keys);  // current first; at least one
  std::string Serialize() const;

  // Makes `ctx` seal and open tickets with these keys. `this` must outlive `ctx`.
  void Install(SSL_CTX* ctx);

  // For the callback and tests.
  using Snapshot = std::vector<TicketKey>;
  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_.load(); }

 private:
  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
};

}  // namespace camtunnel::runtime
