// See ticket_keys.h.
#include "runtime/ticket_keys.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "runtime/read_file.h"

namespace camtunnel::runtime {
namespace {

int ExIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL's ticket callback (SSL_CTX_set_tlsext_ticket_key_evp_cb). enc=1: seal a new ticket
// with the current key. enc=0: find the key by name; 1 = valid, 2 = valid but renew (sealed
// with a previous key), 0 = unknown (full handshake), -1 = error.
int TicketCallback(SSL* ssl, unsigned char key_name[16], unsigned char iv[16],
                   EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  auto* keys = static_cast<TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ExIndex()));
  const std::shared_ptr<const TicketKeys::Snapshot> snap = keys->snapshot();
  const TicketKey* key = nullptr;
  int result = 1;
  if (enc == 1) {
    key = &snap->front();
    std::memcpy(key_name, key->name.data(), key->name.size());
    if (RAND_bytes(iv, 16) != 1) {
      return -1;
    }
  } else {
    for (size_t i = 0; i < snap->size(); ++i) {
      if (std::memcmp(key_name, (*snap)[i].name.data(), 16) == 0) {
        key = &(*snap)[i];
        result = i == 0 ? 1 : 2;
        break;
      }
    }
    if (key == nullptr) {
      return 0;
    }
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(
          OSSL_MAC_PARAM_KEY, const_cast<uint8_t*>(key->hmac_key.data()), key->hmac_key.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) {
    return -1;
  }
  const int ok =
      enc == 1 ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes_key.data(), iv)
               : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes_key.data(), iv);
  return ok == 1 ? result : -1;
}

}  // namespace

TicketKey TicketKey::Random() {
  TicketKey k;
  RAND_bytes(k.name.data(), static_cast<int>(k.name.size()));
  RAND_priv_bytes(k.aes_key.data(), static_cast<int>(k.aes_key.size()));
  RAND_priv_bytes(k.hmac_key.data(), static_cast<int>(k.hmac_key.size()));
  return k;
}

TicketKeys::TicketKeys(std::vector<TicketKey> keys) { Replace(std::move(keys)); }

void TicketKeys::Replace(std::vector<TicketKey> keys) {
  if (keys.size() > kPrevious + 1) {
    keys.resize(kPrevious + 1);
  }
  snapshot_.store(std::make_shared<const Snapshot>(std::move(keys)));
}

void TicketKeys::Rotate(const TicketKey& next) {
  // Rotations come from one place at a time (reload, timer); a lost race would only drop a
  // previous key early, so a plain load + store is enough.
  std::vector<TicketKey> keys{next};
  const auto old = snapshot_.load();
  keys.insert(keys.end(), old->begin(), old->end());
  Replace(std::move(keys));
}

std::string TicketKeys::Serialize() const {
  std::string out;
  for (const TicketKey& k : *snapshot()) {
    std::string raw(reinterpret_cast<const char*>(k.name.data()), k.name.size());
    raw.append(reinterpret_cast<const char*>(k.aes_key.data()), k.aes_key.size());
    raw.append(reinterpret_cast<const char*>(k.hmac_key.data()), k.hmac_key.size());
    out += absl::BytesToHexString(raw) + "\n";
  }
  return out;
}

absl::StatusOr<std::unique_ptr<TicketKeys>> TicketKeys::Parse(const std::string& text) {
  std::vector<TicketKey> keys;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    if (line.size() != 160 ||
        line.find_first_not_of("0123456789abcdefABCDEF") != absl::string_view::npos) {
      return absl::InvalidArgumentError("ticket keys line " + std::to_string(line_no) +
                                        ": want 160 hex digits (name|aes|hmac)");
    }
    const std::string raw = absl::HexStringToBytes(line);
    TicketKey k;
    std::memcpy(k.name.data(), raw.data(), 16);
    std::memcpy(k.aes_key.data(), raw.data() + 16, 32);
    std::memcpy(k.hmac_key.data(), raw.data() + 48, 32);
    keys.push_back(k);
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError("ticket keys: no key");
  }
  return std::make_unique<TicketKeys>(std::move(keys));
}

absl::StatusOr<std::unique_ptr<TicketKeys>> TicketKeys::LoadFile(const std::string& path) {
  auto text = ReadWholeFile(path);
  if (!text.ok()) {
    return absl::NotFoundError("ticket keys " + std::string(text.status().message()));
  }
  auto keys = Parse(*text);
  if (!keys.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(keys.status().message()));
  }
  return keys;
}

absl::Status TicketKeys::SaveFile(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(tmp + ": " + std::strerror(errno));
  }
  const std::string text = Serialize();
  const bool ok =
      write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  const int err = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return absl::InternalError(path + ": " + std::strerror(ok ? errno : err));
  }
  return absl::OkStatus();
}

void TicketKeys::Install(SSL_CTX* ctx) {
  SSL_CTX_set_ex_data(ctx, ExIndex(), this);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, TicketCallback);
}

}  // namespace camtunnel::runtime
