// See https_exchange.h.
#include "agent/https_exchange.h"

#include <cstring>

#include "proto/http_head.h"

namespace camtunnel::agent {

void HttpsExchange::Start(std::string request, int64_t deadline_ms, Done done) {
  request_ = std::move(request);
  done_ = std::move(done);
  state_ = State::kConnecting;
  deadline_.Start(loop_, deadline_ms, [this] {
    Finish({.error = "no complete answer from " + target_.url + " in time"});
  });
  connector_.Start(
      target_.host, target_.port, target_.proxy, 2500,
      [this](int fd, int error, const std::string& detail) { OnConnected(fd, error, detail); });
}

void HttpsExchange::OnConnected(int fd, int error, const std::string& detail) {
  (void)error;  // `detail` names it
  if (fd < 0) {
    Finish({.error = detail});
    return;
  }
  transport_ = factory_.Wrap(fd);
  if (!transport_) {
    Finish({.error = "cannot create a TLS session"});
    return;
  }
  state_ = State::kHandshake;
  watch_.Start(loop_, transport_->fd(), POLLOUT, [this](short) { Step(); });
}

void HttpsExchange::Step() {
  IoStatus status = IoStatus::kOk;
  while (status == IoStatus::kOk && state_ != State::kDone) {
    switch (state_) {
      case State::kHandshake:
        status = transport_->Handshake();
        if (status == IoStatus::kOk) {
          state_ = State::kSending;
        } else if (status == IoStatus::kEof || status == IoStatus::kError) {
          Finish({.error = "TLS with " + target_.url + ": " + transport_->error_text()});
          return;
        }
        break;
      case State::kSending: {
        size_t n = 0;
        std::span<const uint8_t> rest(reinterpret_cast<const uint8_t*>(request_.data()) + sent_,
                                      request_.size() - sent_);
        status = transport_->Write(rest, &n);
        sent_ += n;
        if (status == IoStatus::kError) {
          Finish({.error = transport_->error_text()});
          return;
        }
        if (status == IoStatus::kOk && sent_ == request_.size()) {
          state_ = State::kReading;
        }
        break;
      }
      case State::kReading: {
        uint8_t buf[4096];
        size_t n = 0;
        status = transport_->Read(buf, &n);
        if (status == IoStatus::kOk) {
          response_.append(reinterpret_cast<const char*>(buf), n);
          if (response_.size() > proto::kMaxHeadBytes + kMaxBody) {
            Finish({.error = "answer from " + target_.url + " is too large"});
            return;
          }
        } else if (status == IoStatus::kEof) {
          Complete();
          return;
        } else if (status == IoStatus::kError) {
          // A server that closes without close_notify after a complete Content-Length body
          // still gave a complete answer.
          Complete();
          return;
        }
        break;
      }
      default:
        return;
    }
  }
  watch_.SetEvents(PollEventsFor(status));
}

HttpsResult ParseHttpsAnswer(std::string_view response) {
  proto::ResponseHead head;
  if (proto::ParseResponseHead(response, &head) != proto::HeadResult::kComplete) {
    return {.error = "no valid HTTP answer"};
  }
  HttpsResult r{.ok = true, .status = head.status};
  r.body = std::string(response.substr(head.head_bytes));
  auto length_text = head.headers.Find("Content-Length");
  auto length = length_text ? proto::ParseContentLength(*length_text) : std::nullopt;
  if (!length || *length != r.body.size()) {
    return {.error = "truncated or unframed answer"};
  }
  if (auto retry = head.headers.Find("Retry-After")) {
    auto seconds = proto::ParseContentLength(*retry);  // same digits-only syntax
    if (seconds && *seconds < 86400) {
      r.retry_after_ms = static_cast<int64_t>(*seconds) * 1000;
    }
  }
  return r;
}

void HttpsExchange::Complete() {
  HttpsResult r = ParseHttpsAnswer(response_);
  if (!r.ok) {
    r.error += " from " + target_.url;
  }
  Finish(std::move(r));
}

void HttpsExchange::Finish(HttpsResult result) {
  if (state_ == State::kDone) {
    return;
  }
  state_ = State::kDone;
  watch_.Stop();
  deadline_.Cancel();
  connector_.Cancel();
  transport_.reset();
  Done done = std::move(done_);
  done(std::move(result));
}

}  // namespace camtunnel::agent
