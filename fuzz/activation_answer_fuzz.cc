// Fuzzes the agent's reading of an activation answer (PROTOCOL.md section 10.1): the whole HTTP
// answer as HttpsExchange collects it (agent/https_exchange.h), the JSON body
// (proto/activation_message.h) and the manager URL as the agent then dials it
// (agent/config.h). The input is tried as a whole answer and, so the fuzzer reaches the JSON
// reader fast, as a bare body. Checked: a complete answer's body is exactly the bytes after its
// head; Retry-After stays under a day; an accepted activation result has a canonical id and
// either says why it has no manager URL or has one, https (TLS link) or http (plain link,
// section 10.2), that the agent can dial with the transport its scheme names, so an accepted
// URL never sends the agent back to activating.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/config.h"
#include "agent/https_exchange.h"
#include "fuzz/fuzz_check.h"
#include "proto/activation_message.h"
#include "proto/http_head.h"
#include "proto/identifiers.h"

namespace {

using namespace camtunnel;

void CheckBody(std::string_view body) {
  std::string error;
  const auto result = proto::ParseActivationResult(body, &error);
  if (!result) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  FUZZ_CHECK(body.size() <= proto::kMaxActivationResponseBody);
  FUZZ_CHECK(proto::IsCanonicalAgentId(result->agent_id));
  if (result->manager_url.empty()) {
    // Kept for its secret; the agent reactivates to learn a manager.
    FUZZ_CHECK(!result->manager_url_problem.empty());
    return;
  }
  FUZZ_CHECK(result->manager_url_problem.empty());
  const bool https = result->manager_url.starts_with("https://");
  FUZZ_CHECK(https || result->manager_url.starts_with("http://"));
  // ManagedAgent::ConnectManager: what the answer accepted, the agent must be able to dial.
  agent::GatewayUrl url;
  FUZZ_CHECK(agent::ParseGatewayUrl(result->manager_url, &url, &error));
  FUZZ_CHECK(url.tls == https);
  FUZZ_CHECK(!url.host.empty() && url.port != 0);
  // The deployment's manager list (PROTOCOL.md 10.5): bounded, of manager_url's scheme (no
  // downgrade through a list), and every entry dialable.
  FUZZ_CHECK(result->manager_urls.size() <= proto::kMaxActivationManagers);
  for (const std::string& m : result->manager_urls) {
    FUZZ_CHECK(m.starts_with(https ? "https://" : "http://"));
    FUZZ_CHECK(agent::ParseGatewayUrl(m, &url, &error) && url.tls == https);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // HttpsExchange gives up on anything larger before parsing it.
  if (size > proto::kMaxHeadBytes + agent::HttpsExchange::kMaxBody) {
    return 0;
  }
  const std::string_view response(reinterpret_cast<const char*>(data), size);
  const agent::HttpsResult answer = agent::ParseHttpsAnswer(response);
  if (answer.ok) {
    FUZZ_CHECK(answer.error.empty());
    FUZZ_CHECK(answer.status >= 100 && answer.status <= 999);
    FUZZ_CHECK(response.ends_with(answer.body));
    FUZZ_CHECK(answer.retry_after_ms >= -1 && answer.retry_after_ms < int64_t{86400} * 1000);
    if (answer.status == 200) {
      CheckBody(answer.body);
    }
  } else {
    FUZZ_CHECK(!answer.error.empty());
  }
  CheckBody(response);
  return 0;
}
