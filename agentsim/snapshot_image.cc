#include "agentsim/snapshot_image.h"

#include <openssl/sha.h>

#include "proto/encoding.h"

namespace camtunnel::agentsim {

SnapshotImage MakeSnapshotImage(uint64_t bytes) {
  SnapshotImage img;
  img.body.resize(bytes < 4 ? 4 : bytes);
  // xorshift64: reproducible from run to run, which makes a failing checksum easy to study.
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (auto& b : img.body) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  img.body[0] = 0xff;
  img.body[1] = 0xd8;
  img.body[img.body.size() - 2] = 0xff;
  img.body[img.body.size() - 1] = 0xd9;
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(img.body.data(), img.body.size(), digest);
  img.sha256_hex = proto::HexEncode(digest);
  return img;
}

}  // namespace camtunnel::agentsim
