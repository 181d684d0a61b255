// ReadWholeFile: the bytes of a small file, or an error that names the path; never more than
// its cap in memory.
#include "runtime/read_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace camtunnel::runtime {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/read-file-" + std::to_string(getpid()) + "-" + name;
}

TEST(ReadWholeFileTest, ReturnsEveryByte) {
  const std::string path = TempPath("keys");
  const std::string content = std::string("k1 ") + std::string(40000, 'a') + "\n";
  std::ofstream(path, std::ios::binary) << content;
  auto text = ReadWholeFile(path);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, content);
  unlink(path.c_str());
}

TEST(ReadWholeFileTest, MissingFileNamesThePath) {
  const std::string path = TempPath("missing");
  auto text = ReadWholeFile(path);
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find(path), absl::string_view::npos);
}

TEST(ReadWholeFileTest, RefusesAFileOverItsCap) {
  const std::string path = TempPath("big");
  std::ofstream(path) << std::string(100, 'x');
  EXPECT_FALSE(ReadWholeFile(path, 99).ok());
  EXPECT_TRUE(ReadWholeFile(path, 100).ok());
  unlink(path.c_str());
}

}  // namespace
}  // namespace camtunnel::runtime
