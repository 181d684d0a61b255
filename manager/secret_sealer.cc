// See secret_sealer.h.
#include "manager/secret_sealer.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "proto/crypto.h"
#include "proto/encoding.h"
#include "runtime/log.h"
#include "runtime/read_file.h"

namespace camtunnel::manager {
namespace {

constexpr std::string_view kLabel = "camtunnel-manager agent-secret";
constexpr size_t kHeaderBytes = 2;  // version, key id

std::vector<uint8_t> AssociatedData(std::string_view agent_id, uint8_t key_id) {
  std::vector<uint8_t> aad;
  auto bytes = [](std::string_view s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  proto::AppendLengthPrefixed(aad, bytes(kLabel));
  proto::AppendLengthPrefixed(aad, bytes(agent_id));
  const uint8_t header[kHeaderBytes] = {SecretSealer::kVersion, key_id};
  proto::AppendLengthPrefixed(aad, header);
  return aad;
}

// Logged where it happens (a store worker), whichever caller gets the error: an agent locked out
// by its own row is for the operator to see, not only for the request that failed.
absl::Status DataLoss(std::string_view agent_id, std::string_view why) {
  absl::Status st = absl::DataLossError(
      absl::StrCat("agent ", std::string(agent_id), ": stored secret ", std::string(why)));
  runtime::LogEvent(runtime::LogLevel::kError, "stored_secret_unreadable",
                    {runtime::Kv("agent", agent_id), runtime::Kv("error", st.message())});
  return st;
}

// The key file's text, refused when group or others may read or write it: the keys open every
// secret in the database, so they are guarded as the database's own credentials would be.
absl::StatusOr<std::string> ReadKeyFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat("secrets key file ", path));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrFormat("secrets key file %s is accessible to group or others (mode %04o): "
                        "chmod 600 it",
                        path, st.st_mode & 07777));
  }
  return runtime::ReadWholeFile(path, 64 << 10);
}

// Every key of the file, in order; none for a file of comments only.
absl::StatusOr<std::vector<SecretSealer::KeyEntry>> ParseKeyFile(const std::string& path,
                                                                 std::string& text) {
  std::vector<SecretSealer::KeyEntry> keys;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = line.substr(0, line.find('#'));
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (words.empty()) {
      continue;
    }
    auto malformed = [&](const char* why) {
      return absl::InvalidArgumentError(
          absl::StrCat("secrets key file ", path, " line ", line_number, ": ", why));
    };
    int id = -1;
    if (words.size() != 2 || !absl::SimpleAtoi(words[0], &id)) {
      return malformed("expected KEYID HEX64");
    }
    if (id < 0 || id > 255) {
      return malformed("key id must be 0..255");
    }
    auto key = proto::HexDecode(std::string_view(words[1].data(), words[1].size()));
    if (!key || key->size() != 32) {
      return malformed("expected a key of 64 hex characters");
    }
    SecretSealer::KeyEntry entry{.id = static_cast<uint8_t>(id)};
    std::copy(key->begin(), key->end(), entry.key.begin());
    OPENSSL_cleanse(key->data(), key->size());
    keys.push_back(entry);
    OPENSSL_cleanse(&entry, sizeof(entry));
  }
  OPENSSL_cleanse(text.data(), text.size());
  return keys;
}

}  // namespace

absl::StatusOr<SecretSealer> SecretSealer::FromKeys(std::vector<KeyEntry> keys) {
  if (keys.empty()) {
    return absl::InvalidArgumentError("no secrets key");
  }
  std::set<uint8_t> ids;
  for (const KeyEntry& k : keys) {
    if (!ids.insert(k.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("secrets key id ", static_cast<int>(k.id), " given twice"));
    }
  }
  return SecretSealer(std::move(keys));
}

absl::StatusOr<SecretSealer> SecretSealer::FromKeyFile(const std::string& path) {
  auto text = ReadKeyFile(path);
  if (!text.ok()) {
    return text.status();
  }
  auto keys = ParseKeyFile(path, *text);
  if (!keys.ok()) {
    return keys.status();
  }
  if (keys->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("secrets key file ", path, " holds no key"));
  }
  auto sealer = FromKeys(std::move(*keys));
  if (!sealer.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("secrets key file ", path, ": ", sealer.status().message()));
  }
  return sealer;
}

SecretSealer::~SecretSealer() {
  if (!keys_.empty()) {
    OPENSSL_cleanse(keys_.data(), keys_.size() * sizeof(KeyEntry));
  }
}

SecretSealer::SecretSealer(SecretSealer&& other) noexcept
    : keys_(std::move(other.keys_)),
      opened_clear_(other.opened_clear()),
      opened_older_key_(other.opened_older_key()) {}

std::vector<uint8_t> SecretSealer::Seal(std::string_view agent_id,
                                        const proto::AgentSecret& secret) const {
  const KeyEntry& key = keys_.back();
  std::vector<uint8_t> out(kSealedBytes);
  out[0] = kVersion;
  out[1] = key.id;
  std::span<uint8_t> nonce(out.data() + kHeaderBytes, proto::kAeadNonceBytes);
  proto::RandomBytes(nonce);
  auto sealed = proto::SealDigest(key.key, nonce, AssociatedData(agent_id, key.id), secret);
  std::copy(sealed.begin(), sealed.end(), out.begin() + kHeaderBytes + proto::kAeadNonceBytes);
  return out;
}

absl::StatusOr<proto::AgentSecret> SecretSealer::Open(std::string_view agent_id,
                                                      std::span<const uint8_t> stored) const {
  if (stored.size() == proto::kAgentSecretBytes) {
    if (opened_clear_.fetch_add(1, std::memory_order_relaxed) == 0) {
      runtime::LogEvent(runtime::LogLevel::kWarning, "stored_secret_clear",
                        {runtime::Kv("agent", agent_id),
                         runtime::Kv("note",
                                     "secrets stored before sealing was enabled: run "
                                     "camtunnel-manager reseal to seal them")});
    }
    proto::AgentSecret secret;
    std::copy(stored.begin(), stored.end(), secret.begin());
    return secret;
  }
  if (stored.empty() || stored[0] != kVersion) {
    return DataLoss(agent_id, stored.empty() ? "is empty" : "has an unknown format version");
  }
  if (stored.size() != kSealedBytes) {
    return DataLoss(agent_id, absl::StrCat("is ", stored.size(), " bytes, not ", kSealedBytes));
  }
  const uint8_t key_id = stored[1];
  auto key = std::find_if(keys_.begin(), keys_.end(),
                          [key_id](const KeyEntry& k) { return k.id == key_id; });
  if (key == keys_.end()) {
    return DataLoss(agent_id, absl::StrCat("is sealed under key ", static_cast<int>(key_id),
                                           ", which the secrets key file does not hold"));
  }
  auto nonce = stored.subspan(kHeaderBytes, proto::kAeadNonceBytes);
  auto sealed = stored.subspan(kHeaderBytes + proto::kAeadNonceBytes);
  auto secret = proto::OpenDigest(key->key, nonce, AssociatedData(agent_id, key_id), sealed);
  if (!secret) {
    return DataLoss(agent_id, "does not open (corrupted, or another agent's)");
  }
  if (key_id != sealing_key_id()) {
    opened_older_key_.fetch_add(1, std::memory_order_relaxed);
  }
  return *secret;
}

std::vector<uint8_t> SealForStore(const SecretSealer* sealer, std::string_view agent_id,
                                  const proto::AgentSecret& secret) {
  if (sealer == nullptr) {
    return std::vector<uint8_t>(secret.begin(), secret.end());
  }
  return sealer->Seal(agent_id, secret);
}

absl::StatusOr<proto::AgentSecret> OpenFromStore(const SecretSealer* sealer,
                                                 std::string_view agent_id,
                                                 std::span<const uint8_t> stored) {
  if (sealer != nullptr) {
    return sealer->Open(agent_id, stored);
  }
  if (stored.size() != proto::kAgentSecretBytes) {
    return DataLoss(agent_id,
                    "is sealed, and this manager has no --secrets_key_file to open it with");
  }
  proto::AgentSecret secret;
  std::copy(stored.begin(), stored.end(), secret.begin());
  return secret;
}

absl::StatusOr<uint8_t> AppendNewKey(const std::string& path, std::optional<int> key_id) {
  std::vector<SecretSealer::KeyEntry> existing;
  bool ends_with_newline = true;
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) {
    auto text = ReadKeyFile(path);
    if (!text.ok()) {
      return text.status();
    }
    ends_with_newline = text->empty() || text->back() == '\n';
    auto keys = ParseKeyFile(path, *text);
    if (!keys.ok()) {
      return keys.status();
    }
    existing = std::move(*keys);
  }
  int id = 1;
  for (const auto& k : existing) {
    id = std::max(id, k.id + 1);
  }
  if (key_id) {
    id = *key_id;
  }
  if (id < 0 || id > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("key id ", id, " is outside 0..255 (give --key_id)"));
  }
  for (const auto& k : existing) {
    if (k.id == id) {
      return absl::AlreadyExistsError(absl::StrCat("key id ", id, " is already in ", path));
    }
  }
  OPENSSL_cleanse(existing.data(), existing.size() * sizeof(SecretSealer::KeyEntry));
  SecretSealer::Key key;
  proto::RandomBytes(key);
  std::string line =
      absl::StrCat(ends_with_newline ? "" : "\n", id, " ", proto::HexEncode(key), "\n");
  OPENSSL_cleanse(key.data(), key.size());
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat("secrets key file ", path));
  }
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = write(fd, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      const int err = errno;
      close(fd);
      OPENSSL_cleanse(line.data(), line.size());
      return absl::ErrnoToStatus(err, absl::StrCat("writing secrets key file ", path));
    }
    written += static_cast<size_t>(n);
  }
  OPENSSL_cleanse(line.data(), line.size());
  // The key must be on disk before a manager seals with it: a key lost after sealing loses
  // every secret sealed under it.
  const bool synced = fsync(fd) == 0;
  const int err = errno;
  close(fd);
  if (!synced) {
    return absl::ErrnoToStatus(err, absl::StrCat("syncing secrets key file ", path));
  }
  return static_cast<uint8_t>(id);
}

}  // namespace camtunnel::manager
