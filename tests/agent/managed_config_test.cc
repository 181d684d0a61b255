// Managed-mode command lines (--state_file): what they need, and what they exclude.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/config.h"

namespace camtunnel::agent {
namespace {

using ::testing::HasSubstr;

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

std::vector<std::string> Managed() {
  return {"--state_file",
          "/tmp/s",
          "--activation_url",
          "https://act.example:7443",
          "--serial",
          "sn-1",
          "--factory_secret_file",
          "/tmp/f",
          "--operator",
          "acme",
          "--service",
          "rtsp=127.0.0.1:554"};
}

TEST(ManagedConfig, AcceptsACompleteManagedCommandLine) {
  Parsed p = Parse(Managed());
  ASSERT_EQ(p.outcome, ParseOutcome::kOk) << p.error;
  EXPECT_TRUE(p.config.managed);
  EXPECT_EQ(p.config.manage.serial, "sn-1");
  EXPECT_EQ(p.config.manage.activation_url.port, 7443);
  EXPECT_EQ(p.config.manage.reactivate_after_ms, 600000);
}

TEST(ManagedConfig, RejectsStaticGatewayOptions) {
  auto args = Managed();
  args.insert(args.end(), {"--gateway", "https://gw"});
  Parsed p = Parse(args);
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("excludes --gateway"));
}

TEST(ManagedConfig, RejectsPlainActivationUrl) {
  auto args = Managed();
  args[3] = "http://act.example";
  Parsed p = Parse(args);
  EXPECT_EQ(p.outcome, ParseOutcome::kError);
  EXPECT_THAT(p.error, HasSubstr("https"));
}

TEST(ManagedConfig, RejectsNonCanonicalSerialAndMissingOperator) {
  auto args = Managed();
  args[5] = "SN-1";
  EXPECT_THAT(Parse(args).error, HasSubstr("--serial"));
  args = Managed();
  args.resize(8);
  args.insert(args.end(), {"--service", "rtsp=127.0.0.1:554"});
  EXPECT_THAT(Parse(args).error, HasSubstr("--operator"));
}

}  // namespace
}  // namespace camtunnel::agent
