// Asking every shard: runs a step on each shard's own thread (its registry, its cells) and
// brings the answers back to the shard that asked, in shard order. For admin requests (list
// agents, metrics, drain, denylist), never for per-byte work.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "gateway/gateway_shard.h"

namespace camtunnel::gateway {

// `each` runs once per shard on that shard's thread and must only read what it captured by
// value. `done` runs on `origin`'s thread once every shard has answered; an answer is nullopt
// when the queue to that shard was full. If a shard's queue back to `origin` is full its answer
// is lost and `done` never runs: callers hold a deadline (the admin request's) and must not
// capture anything that deadline frees.
template <typename T>
void FanOut(GatewayShard& origin, std::function<T(GatewayShard&)> each,
            std::function<void(std::vector<std::optional<T>>)> done) {
  struct State {
    std::vector<std::optional<T>> answers;
    unsigned left = 0;  // touched on the origin's thread only
    std::function<void(std::vector<std::optional<T>>)> done;
  };
  const unsigned n = origin.shard_count();
  const unsigned home = origin.index();
  auto state = std::make_shared<State>();
  state->answers.resize(n);
  state->left = n + 1;  // +1 until every request is out, so `done` runs once, at the end
  state->done = std::move(done);
  auto arrived = [](const std::shared_ptr<State>& st) {
    if (--st->left == 0) {
      st->done(std::move(st->answers));
    }
  };
  for (unsigned i = 0; i < n; ++i) {
    const bool sent = origin.PostTo(i, [state, each, home, i, arrived](GatewayShard& gw) mutable {
      T answer = each(gw);
      gw.PostTo(home, [state = std::move(state), i, arrived,
                       answer = std::move(answer)](GatewayShard&) mutable {
        state->answers[i] = std::move(answer);
        arrived(state);
      });
    });
    if (!sent) {
      arrived(state);
    }
  }
  arrived(state);
}

}  // namespace camtunnel::gateway
