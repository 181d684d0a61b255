// The kernel TLS probe agrees with what the kernel says of itself: "tls" is among the
// available TCP upper-layer protocols exactly when the probe reports kTLS (the module may also
// load on demand, which only the probe can see; then the list shows it afterwards).
#include "runtime/ktls_probe.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace camtunnel::runtime {
namespace {

std::string AvailableUlps() {
  std::ifstream in("/proc/sys/net/ipv4/tcp_available_ulp");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(KtlsProbeTest, AgreesWithTheKernelsListAndExplainsItself) {
  const KtlsSupport k = ProbeKernelTls();
  EXPECT_FALSE(k.detail.empty());
  const bool listed = AvailableUlps().find("tls") != std::string::npos;  // after the probe
  EXPECT_EQ(k.available, listed) << k.detail;
  if (!k.available) {
    // This is the fallback every relay takes: TLS in user space. Say so plainly.
    EXPECT_NE(k.detail.find("TLS"), std::string::npos) << k.detail;
  }
}

TEST(KtlsProbeTest, ProbingTwiceGivesTheSameAnswerAndLeaksNoDescriptor) {
  const KtlsSupport a = ProbeKernelTls();
  const int before = dup(0);
  close(before);
  const KtlsSupport b = ProbeKernelTls();
  const int after = dup(0);
  close(after);
  EXPECT_EQ(a.available, b.available);
  EXPECT_EQ(before, after) << "the probe's sockets were all closed";
}

}  // namespace
}  // namespace camtunnel::runtime
