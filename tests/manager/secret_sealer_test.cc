// Agent secrets sealed at rest: the sealed form opens only for its agent and untampered, keys
// rotate (the newest seals, any opens), clear secrets of older databases still open and are
// counted, and the key file is refused when loose, missing or malformed.
#include "manager/secret_sealer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "proto/encoding.h"

namespace camtunnel::manager {
namespace {

SecretSealer::KeyEntry KeyOf(uint8_t id, uint8_t fill) {
  SecretSealer::KeyEntry k{.id = id};
  k.key.fill(fill);
  return k;
}

SecretSealer Sealer(std::vector<SecretSealer::KeyEntry> keys) {
  auto sealer = SecretSealer::FromKeys(std::move(keys));
  EXPECT_TRUE(sealer.ok()) << sealer.status();
  return std::move(*sealer);
}

proto::AgentSecret Secret(uint8_t seed) {
  proto::AgentSecret s;
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = static_cast<uint8_t>(seed + i);
  }
  return s;
}

std::string TempDir() {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("camtunnel-sealer-" + std::to_string(getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
  return path;
}

TEST(SecretSealer, SealedSecretOpensForItsAgent) {
  SecretSealer sealer = Sealer({KeyOf(1, 0xaa)});
  const auto sealed = sealer.Seal("cam-1", Secret(7));
  ASSERT_EQ(sealed.size(), SecretSealer::kSealedBytes);
  EXPECT_EQ(sealed[0], SecretSealer::kVersion);
  EXPECT_EQ(sealed[1], 1);
  auto opened = sealer.Open("cam-1", sealed);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, Secret(7));
  EXPECT_EQ(sealer.opened_clear(), 0u);
}

TEST(SecretSealer, SealsWithAFreshNonceEachTime) {
  SecretSealer sealer = Sealer({KeyOf(1, 0xaa)});
  EXPECT_NE(sealer.Seal("cam-1", Secret(7)), sealer.Seal("cam-1", Secret(7)));
}

TEST(SecretSealer, SecretCopiedToAnotherAgentDoesNotOpen) {
  SecretSealer sealer = Sealer({KeyOf(1, 0xaa)});
  auto opened = sealer.Open("cam-2", sealer.Seal("cam-1", Secret(7)));
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(absl::IsDataLoss(opened.status()));
  EXPECT_NE(opened.status().message().find("cam-2"), std::string_view::npos);
}

TEST(SecretSealer, AnyTamperedByteFailsToOpen) {
  SecretSealer sealer = Sealer({KeyOf(1, 0xaa), KeyOf(2, 0xbb)});
  const auto sealed = sealer.Seal("cam-1", Secret(7));
  for (size_t i = 0; i < sealed.size(); ++i) {
    auto tampered = sealed;
    tampered[i] ^= 0x01;
    EXPECT_TRUE(absl::IsDataLoss(sealer.Open("cam-1", tampered).status())) << "byte " << i;
  }
  auto truncated = sealed;
  truncated.pop_back();
  EXPECT_TRUE(absl::IsDataLoss(sealer.Open("cam-1", truncated).status()));
}

TEST(SecretSealer, NewestKeySealsAndOlderKeysStillOpen) {
  SecretSealer old_only = Sealer({KeyOf(1, 0xaa)});
  const auto sealed_old = old_only.Seal("cam-1", Secret(7));

  SecretSealer rotated = Sealer({KeyOf(1, 0xaa), KeyOf(2, 0xbb)});
  EXPECT_EQ(rotated.sealing_key_id(), 2);
  const auto sealed_new = rotated.Seal("cam-1", Secret(7));
  EXPECT_EQ(sealed_new[1], 2);
  ASSERT_TRUE(rotated.Open("cam-1", sealed_old).ok());
  EXPECT_EQ(rotated.opened_older_key(), 1u);
  ASSERT_TRUE(rotated.Open("cam-1", sealed_new).ok());
  EXPECT_EQ(rotated.opened_older_key(), 1u);

  // Once the old key is removed, only what the new key sealed opens.
  SecretSealer new_only = Sealer({KeyOf(2, 0xbb)});
  EXPECT_EQ(*new_only.Open("cam-1", sealed_new), Secret(7));
  auto lost = new_only.Open("cam-1", sealed_old);
  ASSERT_FALSE(lost.ok());
  EXPECT_NE(lost.status().message().find("key 1"), std::string_view::npos);
}

TEST(SecretSealer, ClearSecretOfAnOlderDatabaseOpensAndIsCounted) {
  SecretSealer sealer = Sealer({KeyOf(1, 0xaa)});
  const proto::AgentSecret clear = Secret(9);
  auto opened = sealer.Open("cam-1", clear);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, clear);
  EXPECT_EQ(sealer.opened_clear(), 1u);
}

TEST(SecretSealer, WithoutASealerStoresClearAndRefusesSealed) {
  const proto::AgentSecret secret = Secret(3);
  const auto stored = SealForStore(nullptr, "cam-1", secret);
  EXPECT_EQ(stored, std::vector<uint8_t>(secret.begin(), secret.end()));
  EXPECT_EQ(*OpenFromStore(nullptr, "cam-1", stored), Secret(3));

  SecretSealer sealer = Sealer({KeyOf(1, 0xaa)});
  auto sealed = SealForStore(&sealer, "cam-1", Secret(3));
  EXPECT_EQ(*OpenFromStore(&sealer, "cam-1", sealed), Secret(3));
  EXPECT_TRUE(absl::IsDataLoss(OpenFromStore(nullptr, "cam-1", sealed).status()));
}

TEST(SecretSealer, RefusesDuplicateKeyIds) {
  EXPECT_FALSE(SecretSealer::FromKeys({KeyOf(1, 0xaa), KeyOf(1, 0xbb)}).ok());
  EXPECT_FALSE(SecretSealer::FromKeys({}).ok());
}

TEST(SecretsKeyFile, LastLineSealsAndCommentsAreSkipped) {
  const std::string dir = TempDir();
  const std::string text = "# rotated 2026-12\n3 " + std::string(64, 'a') + "  # old\n\n7 " +
                           std::string(64, 'b') + "\n";
  auto sealer = SecretSealer::FromKeyFile(WriteFile(dir + "/keys", text, 0600));
  ASSERT_TRUE(sealer.ok()) << sealer.status();
  EXPECT_EQ(sealer->key_count(), 2u);
  EXPECT_EQ(sealer->sealing_key_id(), 7);
}

TEST(SecretsKeyFile, RefusesAFileGroupOrOthersCanRead) {
  const std::string dir = TempDir();
  const std::string text = "1 " + std::string(64, 'a') + "\n";
  for (mode_t mode : {0640, 0604, 0660, 0602}) {
    auto sealer = SecretSealer::FromKeyFile(WriteFile(dir + "/keys", text, mode));
    ASSERT_FALSE(sealer.ok()) << std::oct << mode;
    EXPECT_TRUE(absl::IsPermissionDenied(sealer.status()));
    EXPECT_NE(sealer.status().message().find("chmod 600"), std::string_view::npos);
  }
  EXPECT_TRUE(SecretSealer::FromKeyFile(WriteFile(dir + "/keys", text, 0400)).ok());
}

TEST(SecretsKeyFile, RefusesMissingEmptyAndMalformedFiles) {
  const std::string dir = TempDir();
  EXPECT_TRUE(absl::IsNotFound(SecretSealer::FromKeyFile(dir + "/none").status()));
  const std::string a64(64, 'a');
  const std::vector<std::string> malformed = {"# nothing\n",
                                              "1\n",
                                              "1 abcd\n",
                                              "x " + a64,
                                              "300 " + a64,
                                              "1 " + std::string(64, 'g'),
                                              "1 " + a64 + " extra",
                                              "1 " + a64 + "\n1 " + std::string(64, 'b')};
  for (const std::string& text : malformed) {
    auto sealer = SecretSealer::FromKeyFile(WriteFile(dir + "/keys", text, 0600));
    EXPECT_TRUE(absl::IsInvalidArgument(sealer.status())) << text << ": " << sealer.status();
  }
}

TEST(SecretsKeyFile, NewKeyIsAppendedAndSealsNext) {
  const std::string dir = TempDir();
  const std::string path = dir + "/keys";
  auto first = AppendNewKey(path, std::nullopt);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 1);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = AppendNewKey(path, 9);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(absl::IsAlreadyExists(AppendNewKey(path, 9).status()));
  EXPECT_EQ(*AppendNewKey(path, std::nullopt), 10);
  auto sealer = SecretSealer::FromKeyFile(path);
  ASSERT_TRUE(sealer.ok()) << sealer.status();
  EXPECT_EQ(sealer->key_count(), 3u);
  EXPECT_EQ(sealer->sealing_key_id(), 10);

  chmod(path.c_str(), 0644);
  EXPECT_TRUE(absl::IsPermissionDenied(AppendNewKey(path, std::nullopt).status()));
}

}  // namespace
}  // namespace camtunnel::manager
