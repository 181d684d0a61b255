// Fuzzes routing of a frontend connection's first request head. Input: one selector byte (host
// suffix), then the bytes the media server sent. Invariants checked:
// - a routed request names a canonical agent, a service or port, and (path forms) "/<agent>";
// - the first head passes CheckRoutedRequest on its own route, and path forms rewrite it to a
//   target that no longer starts with the agent prefix's URL;
// - every error has a status, and every answer parses as a response head.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/frontend_route.h"
#include "proto/http_head.h"
#include "proto/identifiers.h"

using camtunnel::gateway::FrontendError;
using camtunnel::gateway::FrontendForm;
using camtunnel::gateway::FrontendProtocol;

namespace {

void Check(bool condition) {
  if (!condition) {
    std::abort();
  }
}

void CheckResponse(const std::string& response, int status) {
  camtunnel::proto::ResponseHead head;
  Check(camtunnel::proto::ParseResponseHead(response, &head) ==
        camtunnel::proto::HeadResult::kComplete);
  Check(head.status == status);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  static const char* const kSuffixes[] = {"localhost", "", "cams.example.com"};
  camtunnel::gateway::FrontendRouteConfig config{kSuffixes[data[0] % 3]};
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  camtunnel::proto::RequestHead head;
  camtunnel::proto::HeadResult result = camtunnel::proto::ParseRequestHead(input, &head);
  FrontendProtocol sniffed = camtunnel::gateway::SniffProtocol(input);
  if (result != camtunnel::proto::HeadResult::kComplete) {
    if (result != camtunnel::proto::HeadResult::kNeedMore) {
      FrontendError error = camtunnel::gateway::FrontendErrorFromHeadResult(result);
      CheckResponse(camtunnel::gateway::BuildErrorResponse(sniffed, error, ""),
                    camtunnel::gateway::FrontendErrorStatus(error));
    }
    return 0;
  }

  camtunnel::gateway::RouteDecision decision = camtunnel::gateway::RouteFirstRequest(head, config);
  if (decision.error != FrontendError::kOk) {
    int status = camtunnel::gateway::FrontendErrorStatus(decision.error);
    Check(status >= 400 && status <= 599);
    std::string_view cseq = head.headers.Find("CSeq").value_or("");
    CheckResponse(camtunnel::gateway::BuildErrorResponse(sniffed, decision.error, cseq), status);
    return 0;
  }
  const camtunnel::gateway::FrontendRoute& route = decision.route;
  Check(camtunnel::proto::IsCanonicalAgentId(route.agent_id));
  Check(!route.service.empty() || route.port.has_value());
  bool path_form = route.form == FrontendForm::kRtspPath || route.form == FrontendForm::kHttpPath;
  Check(path_form == !route.path_prefix.empty());
  if (path_form) {
    Check(route.path_prefix == "/" + route.agent_id);
  }
  if (route.form == FrontendForm::kConnect || route.form == FrontendForm::kRtspOverHttp) {
    return 0;
  }
  std::string target;
  FrontendError again =
      camtunnel::gateway::CheckRoutedRequest(head, route, config, "10.1.2.3:554", &target);
  Check(again == FrontendError::kOk);
  Check(path_form == !target.empty());
  if (path_form) {
    Check(target[0] == '/' || target.find("10.1.2.3:554/") != std::string::npos);
  }
  return 0;
}
