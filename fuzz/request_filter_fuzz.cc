// Fuzzes the client->camera stream of a routed frontend connection. Input: one selector byte
// (which route: RTSP/HTTP host/path, CONNECT, RTSP over HTTP; and how to split), then the stream.
// Invariants checked:
// - the output and the result do not depend on how the stream is split (one shot, byte by byte,
//   pseudo-random chunks, and with the caller forwarding pass-through budgets itself);
// - what a fresh filter makes of a prefix, when it finds no error there, is a prefix of what it
//   makes of the whole stream: early data on a spare (PROTOCOL.md 8.1) sends the first, and the
//   relay skips that many bytes of the second;
// - raw mode (RTSP over HTTP) is the identity, CONNECT output is a suffix of the input;
// - host forms never change a byte: the output is a prefix of the input, short of it only by an
//   incomplete last head (held back) or by what follows an error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "gateway/request_filter.h"
#include "proto/http_head.h"

using camtunnel::gateway::FrontendError;
using camtunnel::gateway::FrontendForm;
using camtunnel::gateway::FrontendRoute;
using camtunnel::gateway::FrontendRouteConfig;
using camtunnel::gateway::RequestFilter;

namespace {

void Check(bool condition) {
  if (!condition) {
    std::abort();
  }
}

struct Outcome {
  FrontendError error = FrontendError::kOk;
  std::string out;
  bool operator==(const Outcome&) const = default;
};

FrontendRoute MakeRoute(unsigned which) {
  FrontendRoute route;
  route.agent_id = "cam-1";
  switch (which % 6) {
    case 0:
      route.form = FrontendForm::kRtspHost;
      route.service = "rtsp";
      break;
    case 1:
      route.form = FrontendForm::kRtspPath;
      route.service = "rtsp";
      route.path_prefix = "/cam-1";
      route.client_authority = "gw:8554";
      break;
    case 2:
      route.form = FrontendForm::kHttpHost;
      route.service = "http";
      break;
    case 3:
      route.form = FrontendForm::kHttpPath;
      route.service = "http";
      route.path_prefix = "/cam-1";
      route.client_authority = "gw:8554";
      break;
    case 4:
      route.form = FrontendForm::kConnect;
      route.service = "rtsp";
      break;
    default:
      route.form = FrontendForm::kRtspOverHttp;
      route.service = "rtsp";
      break;
  }
  return route;
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Feeds `input` in chunks whose sizes come from a small xorshift generator (seed 0: one shot;
// seed 1: byte by byte). With `use_budget`, bytes within the pass-through budget are forwarded
// "by the caller" (SkipPassThrough) instead of being fed.
Outcome Run(const FrontendRoute& route, std::string_view input, uint32_t seed, bool use_budget) {
  RequestFilter stream(route, FrontendRouteConfig{"localhost"}, "127.0.0.1:554");
  Outcome outcome;
  size_t pos = 0;
  uint32_t state = seed;
  while (pos < input.size() && outcome.error == FrontendError::kOk) {
    if (use_budget) {
      uint64_t budget = stream.PassThroughBudget();
      if (budget > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(budget, input.size() - pos));
        outcome.out.append(input.substr(pos, n));
        stream.SkipPassThrough(n);
        pos += n;
        continue;
      }
    }
    size_t chunk = input.size() - pos;
    if (seed == 1) {
      chunk = 1;
    } else if (seed != 0) {
      state ^= state << 13;
      state ^= state >> 17;
      state ^= state << 5;
      chunk = std::min<size_t>(chunk, state % 97);
    }
    outcome.error = stream.Feed(Bytes(input.substr(pos, chunk)), &outcome.out);
    pos += chunk;
  }
  if (outcome.error == FrontendError::kOk) {
    outcome.error = stream.Feed({}, &outcome.out);
  }
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 64 * 1024) {
    return 0;
  }
  const FrontendRoute route = MakeRoute(data[0]);
  const uint32_t seed = 2u + data[0];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  const Outcome whole = Run(route, input, 0, false);
  Check(Run(route, input, 1, false) == whole);
  Check(Run(route, input, seed, false) == whole);
  Check(Run(route, input, seed, true) == whole);
  Check(Run(route, input, 0, true) == whole);

  const std::string_view held_at_open = input.substr(0, input.size() * data[0] / 255);
  const Outcome ahead = Run(route, held_at_open, 0, false);
  if (ahead.error == FrontendError::kOk) {
    Check(whole.out.starts_with(ahead.out));
  }

  switch (route.form) {
    case FrontendForm::kRtspOverHttp:
      Check(whole.error == FrontendError::kOk && whole.out == input);
      break;
    case FrontendForm::kConnect:
      Check(whole.out.size() <= input.size() &&
            input.substr(input.size() - whole.out.size()) == whole.out);
      break;
    case FrontendForm::kRtspHost:
    case FrontendForm::kHttpHost:
      // Everything is forwarded except a head still incomplete at the end (held back, at most
      // one head) or, after an error, what follows the error.
      Check(input.starts_with(whole.out));
      if (whole.error == FrontendError::kOk) {
        Check(input.size() - whole.out.size() < camtunnel::proto::kMaxHeadBytes);
      }
      break;
    case FrontendForm::kRtspPath:
    case FrontendForm::kHttpPath:
      break;
  }
  return 0;
}
