// Command-line parsing: valid configurations, and every class of bad input rejected with a
// message that names the problem.
#include "agent/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

namespace camtunnel::agent {
namespace {

using ::testing::HasSubstr;

constexpr char kGoodPin[] = "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

struct Parsed {
  ParseOutcome outcome;
  Config config;
  std::string error;
};

Parsed Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "camtunnel-agent");
  std::vector<char*> argv;
  for (auto& s : args) {
    argv.push_back(s.data());
  }
  argv.push_back(nullptr);
  Parsed p;
  p.outcome = ParseCommandLine(static_cast<int>(args.size()), argv.data(), &p.config, &p.error);
  return p;
}

// A complete, valid command line plus `extra`.
Parsed ParseWith(std::initializer_list<std::string> extra,
                 std::string gateway = "https://gw.example.com", std::string agent_id = "cam-42") {
  std::vector<std::string> args{
      "--gateway",     gateway,      "--agent_id", agent_id,    "--key_ref",
      "k1.1767225600", "--key_file", "/tmp/k",     "--service", "rtsp=127.0.0.1:554"};
  args.insert(args.end(), extra.begin(), extra.end());
  return Parse(std::move(args));
}

TEST(ConfigTest, ParsesACompleteCommandLine) {
  Parsed p =
      ParseWith({"--service", "http=127.0.0.1:80", "--pin", kGoodPin, "--log_level", "debug"});
  ASSERT_EQ(p.outcome, ParseOutcome::kOk) << p.error;
  EXPECT_TRUE(p.config.gateway.tls);
  EXPECT_EQ(p.config.gateway.host, "gw.example.com");
  EXPECT_EQ(p.config.gateway.port, 443);
  EXPECT_EQ(p.config.agent_id, "cam-42");
  EXPECT_EQ(p.config.key_ref.key_id, "k1");
  EXPECT_EQ(p.config.key_ref.expiry, 1767225600u);
  ASSERT_EQ(p.config.services.size(), 2u);
  EXPECT_EQ(p.config.services[0].name, "rtsp");
  EXPECT_EQ(p.config.services[0].host, "127.0.0.1");
  EXPECT_EQ(p.config.services[0].port, 554);
  EXPECT_EQ(p.config.services[1].name, "http");
  EXPECT_EQ(p.config.services[1].port, 80);
  ASSERT_EQ(p.config.pins.size(), 1u);
  EXPECT_EQ(p.config.pins[0][0], 0xe3);  // SHA-256("") starts e3b0c442
  EXPECT_EQ(p.config.server_name, "gw.example.com");
  EXPECT_EQ(p.config.log_level, LogLevel::kDebug);
}

TEST(ConfigTest, RejectsNonCanonicalAgentIds) {
  for (const char* bad : {"Cam-42", "cam_42", "-cam", "cam-", "", "cam.42", "cam%2d42",
                          "a123456789012345678901234567890123456789012345678901234567890123"}) {
    Parsed p = ParseWith({}, "https://gw.example.com", bad);
    EXPECT_EQ(p.outcome, ParseOutcome::kError) << bad;
    EXPECT_THAT(p.error, HasSubstr("--agent_id")) << bad;
  }
}

TEST(ConfigTest, AcceptsGatewayUrlForms) {
  GatewayUrl url;
  std::string error;
  ASSERT_TRUE(ParseGatewayUrl("http://10.0.0.1", &url, &error)) << error;
  EXPECT_FALSE(url.tls);
  EXPECT_EQ(url.port, 80);
  ASSERT_TRUE(ParseGatewayUrl("https://gw.example.com:8443/", &url, &error)) << error;
  EXPECT_TRUE(url.tls);
  EXPECT_EQ(url.port, 8443);
  ASSERT_TRUE(ParseGatewayUrl("https://[::1]:9443", &url, &error)) << error;
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 9443);
  ASSERT_TRUE(ParseGatewayUrl("http://[2001:db8::7]", &url, &error)) << error;
  EXPECT_EQ(url.port, 80);
}

TEST(ConfigTest, RejectsBadGatewayUrls) {
  for (const char* bad :
       {"gw.example.com", "gw", "", "ftp://gw", "https://", "https://gw:0", "https://gw:65536",
        "https://gw:", "https://gw:08", "https://gw/path", "https://user@gw", "https://gw?x=1",
        "https://[::1", "https://[nothex]:80", "https://gw_1.example", "https://-gw",
        "https://gw:443x", "HTTPS://gw"}) {
    Parsed p = ParseWith({}, bad);
    EXPECT_EQ(p.outcome, ParseOutcome::kError) << bad;
    EXPECT_THAT(p.error, HasSubstr("--gateway")) << bad;
  }
}

TEST(ConfigTest, RejectsBadServiceEntries) {
  for (const char* bad :
       {"rtsp", "rtsp=127.0.0.1", "rtsp=127.0.0.1:0", "rtsp=127.0.0.1:70000", "RTSP=127.0.0.1:554",
        "=127.0.0.1:554", "rtsp=:554", "rtsp=127.0.0.1:55a"}) {
    Parsed p = ParseWith({"--service", bad});
    EXPECT_EQ(p.outcome, ParseOutcome::kError) << bad;
    EXPECT_THAT(p.error, HasSubstr("--service")) << bad;
  }
}

TEST(ConfigTest, RejectsDuplicateServiceNames) {
  Parsed p = ParseWith({"--service", "rtsp=127.0.0.1:8554"});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("twice"));
}

TEST(ConfigTest, RejectsBadKeyRefsAndPins) {
  Parsed p = ParseWith({"--key_ref", "k1"});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("--key_ref"));
  p = ParseWith({"--key_ref", "k1.0123"});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  for (const char* bad : {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                          "sha1/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                          "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF=",
                          "sha256/47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}) {
    p = ParseWith({"--pin", bad});
    EXPECT_EQ(p.outcome, ParseOutcome::kError) << bad;
    EXPECT_THAT(p.error, HasSubstr("--pin")) << bad;
  }
}

TEST(ConfigTest, RequiresEveryMandatoryOption) {
  Parsed p = Parse({"--agent_id", "cam-1"});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("--gateway is required"));
  p = Parse(
      {"--gateway", "http://gw", "--agent_id", "cam-1", "--key_ref", "k1.5", "--key_file", "/k"});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("--service"));
}

TEST(ConfigTest, RejectsUnknownOptionsMissingValuesAndStrayArguments) {
  Parsed p = ParseWith({"--frobnicate"});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("unknown option --frobnicate"));
  p = ParseWith({"--ca_file"});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("missing value for --ca_file"));
  p = ParseWith({"extra"});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("unexpected argument: extra"));
}

TEST(ConfigTest, TlsOptionsNeedHttpsAndInsecureExcludesPins) {
  Parsed p = ParseWith({"--pin", kGoodPin}, "http://gw.example.com");
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("https://"));
  p = ParseWith({"--insecure", "--pin", kGoodPin});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("--insecure"));
  p = ParseWith({"--insecure", "--server_name", "other.example.com"});
  ASSERT_EQ(p.outcome, ParseOutcome::kOk) << p.error;
  EXPECT_TRUE(p.config.insecure);
  EXPECT_EQ(p.config.server_name, "other.example.com");
}

TEST(ConfigTest, KernelTlsIsOnUnlessTurnedOff) {
  Parsed p = ParseWith({});
  ASSERT_EQ(p.outcome, ParseOutcome::kOk) << p.error;
  EXPECT_TRUE(p.config.kernel_tls);
  p = ParseWith({"--no_kernel_tls"});
  ASSERT_EQ(p.outcome, ParseOutcome::kOk) << p.error;
  EXPECT_FALSE(p.config.kernel_tls);
}

TEST(ConfigTest, HyphenatedSpellingsStillWorkAndAreNamedOnceEach) {
  Parsed p = Parse({"--gateway", "https://gw.example.com", "--agent-id", "cam-1", "--key-ref",
                    "k1.1767225600", "--key-file=/tmp/k", "--service", "rtsp=127.0.0.1:554",
                    "--ca-file", "/ca.pem", "--ca-file", "/ca2.pem", "--no-kernel-tls"});
  ASSERT_EQ(p.outcome, ParseOutcome::kOk) << p.error;
  EXPECT_EQ(p.config.agent_id, "cam-1");
  EXPECT_EQ(p.config.key_file, "/tmp/k");
  EXPECT_EQ(p.config.ca_file, "/ca2.pem");
  EXPECT_FALSE(p.config.kernel_tls);
  EXPECT_THAT(p.config.deprecation_warnings,
              ::testing::ElementsAre("--agent-id is deprecated, use --agent_id",
                                     "--key-ref is deprecated, use --key_ref",
                                     "--key-file is deprecated, use --key_file",
                                     "--ca-file is deprecated, use --ca_file",
                                     "--no-kernel-tls is deprecated, use --no_kernel_tls"));
  EXPECT_TRUE(ParseWith({}).config.deprecation_warnings.empty());
}

TEST(ConfigTest, HelpIsNotAnError) { EXPECT_EQ(Parse({"--help"}).outcome, ParseOutcome::kHelp); }

TEST(ConfigTest, VersionIsNotAnError) {
  EXPECT_EQ(Parse({"--version"}).outcome, ParseOutcome::kVersion);
}

TEST(ConfigTest, ProxyIsParsedAndABadOneNamed) {
  Parsed p = ParseWith({"--proxy", "http://user:pw@127.0.0.1:3128"});
  ASSERT_EQ(p.outcome, ParseOutcome::kOk) << p.error;
  ASSERT_NE(p.config.proxy, nullptr);
  EXPECT_EQ(p.config.proxy->port, 3128);
  EXPECT_FALSE(p.config.proxy->authorization.empty());
  EXPECT_EQ(ParseWith({}).config.proxy, nullptr);
  p = ParseWith({"--proxy", "socks5://127.0.0.1:1080"});
  ASSERT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("--proxy must be"));
}

// The proxy URL may carry credentials: --proxy_file keeps them out of the process list.
TEST(ConfigTest, ProxyFromAFileAndNeverBoth) {
  char path[] = "/tmp/camtunnel-agent-proxy-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string url = "http://user:s3cret@127.0.0.1:3128\n";
  ASSERT_EQ(write(fd, url.data(), url.size()), static_cast<ssize_t>(url.size()));
  close(fd);
  Parsed p = ParseWith({"--proxy_file", path});
  ASSERT_EQ(p.outcome, ParseOutcome::kOk) << p.error;
  ASSERT_NE(p.config.proxy, nullptr);
  EXPECT_EQ(p.config.proxy->port, 3128);
  EXPECT_FALSE(p.config.proxy->authorization.empty());
  p = ParseWith({"--proxy_file", path, "--proxy", "http://127.0.0.1:3128"});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("once"));
  unlink(path);
  p = ParseWith({"--proxy_file", path});
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("cannot read"));
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/camtunnel-agent-key-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
  }
  void TearDown() override { unlink(path_.c_str()); }
  void Write(const std::string& text) {
    std::ofstream(path_) << text;
    chmod(path_.c_str(), 0600);
  }
  std::string path_;
};

TEST_F(KeyFileTest, LoadsHexKeyWithSurroundingWhitespace) {
  Write("  000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F\n");
  proto::Digest key{};
  std::string error;
  ASSERT_TRUE(LoadKeyFile(path_, &key, &error)) << error;
  for (size_t i = 0; i < key.size(); ++i) {
    EXPECT_EQ(key[i], i);
  }
}

TEST_F(KeyFileTest, RejectsWrongLengthAndNonHex) {
  proto::Digest key{};
  std::string error;
  Write("0001020304");
  EXPECT_FALSE(LoadKeyFile(path_, &key, &error));
  EXPECT_THAT(error, HasSubstr("64 hexadecimal"));
  Write("zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  EXPECT_FALSE(LoadKeyFile(path_, &key, &error));
  Write("00 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  EXPECT_FALSE(LoadKeyFile(path_, &key, &error));
  EXPECT_FALSE(LoadKeyFile(path_ + ".missing", &key, &error));
  EXPECT_THAT(error, HasSubstr("cannot open"));
}

}  // namespace
}  // namespace camtunnel::agent
