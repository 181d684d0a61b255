// Log lines: key=value fields, values from the network escaped so they can neither break a
// line nor forge a field.
#include "runtime/log.h"

#include <gtest/gtest.h>

namespace camtunnel::runtime {
namespace {

TEST(LogTest, FieldsAreKeyValue) {
  EXPECT_EQ(FormatLogFields("agent_connected", {Kv("agent", "cam-1"), Kv("services", 2)}),
            "event=agent_connected agent=cam-1 services=2");
}

TEST(LogTest, UntrustedValuesAreQuotedAndEscaped) {
  EXPECT_EQ(FormatLogFields("e", {Kv("text", "a b"), Kv("empty", ""),
                                  Kv("forged", "x\nts=1 level=error event=fake"),
                                  Kv("quote", "say \"hi\"=\\")}),
            "event=e text=\"a b\" empty=\"\" forged=\"x\\x0ats=1 level=error event=fake\" "
            "quote=\"say \\\"hi\\\"=\\\\\"");
}

}  // namespace
}  // namespace camtunnel::runtime
