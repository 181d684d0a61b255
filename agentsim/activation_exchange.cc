#include "agentsim/activation_exchange.h"

#include <cerrno>

#include "absl/strings/numbers.h"
#include "agentsim/dial.h"
#include "proto/activation_message.h"
#include "proto/http_head.h"

namespace camtunnel::agentsim {
namespace {

std::string DialFailure(int error) {
  switch (error) {
    case ECONNREFUSED:
      return "connect_refused";
    case ETIMEDOUT:
      return "timeout";
    default:
      return "connect_error";
  }
}

}  // namespace

int64_t RetryAfterMs(const proto::ResponseHead& head) {
  auto retry = head.headers.Find("Retry-After");
  uint32_t seconds = 0;
  if (!retry || !absl::SimpleAtoi(absl::string_view(retry->data(), retry->size()), &seconds)) {
    return -1;
  }
  return int64_t{seconds} * 1000;
}

void ActivationExchange::Start(SimContext& ctx, const UrlEndpoint& server, uint32_t agent_index,
                               const std::string& body, uint64_t timeout_ms, Done done) {
  std::string request = "POST " + std::string(proto::kActivatePath) +
                        " HTTP/1.1\r\nHost: " + server.host +
                        "\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        "Content-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
  auto* x = new ActivationExchange(ctx, std::move(request), std::move(done));
  ctx.shard.timers().Arm(x->deadline_, ctx.shard.now_ms(), timeout_ms);
  Dial(ctx.shard, server.address, ctx.Source(agent_index), ctx.manager_tls_ctx, server.server_name,
       timeout_ms, x, [x](runtime::Stream* s, int error) { x->OnDialed(s, error); });
}

ActivationExchange::ActivationExchange(SimContext& ctx, std::string request, Done done)
    : ctx_(ctx), request_(std::move(request)), done_(std::move(done)) {
  deadline_.set_callback([this] {
    Finish({.failure = "timeout"});
    if (stream_ != nullptr) {
      stream_->Close(ETIMEDOUT);
    }
  });
}

void ActivationExchange::OnDialed(runtime::Stream* stream, int error) {
  if (stream == nullptr) {
    Finish({.failure = DialFailure(error)});
    ctx_.shard.timers().Cancel(deadline_);
    delete this;
    return;
  }
  stream_ = stream;
  if (finished_ || ctx_.stopping) {
    stream->Close(ETIMEDOUT);
  }
}

void ActivationExchange::OnStreamReady(runtime::Stream& stream) { stream.Write(request_); }

void ActivationExchange::OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) {
  if (finished_) {
    return;
  }
  buffer_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (buffer_.size() > kMaxAnswerBytes) {
    Finish({.failure = "answer_too_large"});
    stream.Close(EPROTO);
    return;
  }
  if (ParseAnswer(false)) {
    Finish(answer_);
    stream.Close(0);
  }
}

void ActivationExchange::OnStreamEof(runtime::Stream& stream) {
  if (!finished_) {
    if (buffer_.empty()) {
      // Closed before any answer: the server is busy (PROTOCOL.md section 4).
      Finish({.failure = "closed"});
    } else {
      ParseAnswer(true);
      Finish(answer_);
    }
  }
  stream.Close(0);
}

void ActivationExchange::OnStreamClosed(runtime::Stream& /*stream*/, int error) {
  if (!finished_) {
    // Reset or TLS failure before a complete answer; a close before any byte is a busy server.
    Finish({.failure =
                buffer_.empty() ? (error == EPROTO ? "tls_error" : "closed") : "truncated_answer"});
  }
  ctx_.shard.timers().Cancel(deadline_);
  delete this;
}

bool ActivationExchange::ParseAnswer(bool at_end) {
  proto::ResponseHead head;
  const proto::HeadResult r = proto::ParseResponseHead(buffer_, &head);
  if (r == proto::HeadResult::kNeedMore) {
    if (at_end) {
      answer_ = {.failure = "truncated_answer"};
    }
    return at_end;
  }
  if (r != proto::HeadResult::kComplete) {
    answer_ = {.failure = "malformed_answer"};
    return true;
  }
  std::optional<uint64_t> length;
  if (auto cl = head.headers.Find("Content-Length")) {
    length = proto::ParseContentLength(*cl);
  }
  const size_t have = buffer_.size() - head.head_bytes;
  if (length && have < *length) {
    if (at_end) {
      answer_ = {.failure = "truncated_answer"};
    }
    return at_end;
  }
  if (!length && !at_end) {
    return false;  // the body runs to the close
  }
  answer_ = {.status = head.status, .retry_after_ms = RetryAfterMs(head)};
  answer_.body = buffer_.substr(head.head_bytes, length ? *length : std::string::npos);
  return true;
}

void ActivationExchange::Finish(const ActivationAnswer& answer) {
  if (finished_) {
    return;
  }
  finished_ = true;
  ctx_.shard.timers().Cancel(deadline_);
  if (!ctx_.stopping) {
    done_(answer);
  }
}

}  // namespace camtunnel::agentsim
