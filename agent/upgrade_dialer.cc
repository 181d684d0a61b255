// See upgrade_dialer.h.
#include "agent/upgrade_dialer.h"

#include <cstring>

#include "agent/log.h"

namespace camtunnel::agent {
namespace {

// The 2nd..Nth address of a gateway name only gets a chance within the 5 s handshake deadline
// if one address cannot use all of it.
constexpr int64_t kConnectAttemptTimeoutMs = 2500;

int64_t ParseRetryAfterMs(const proto::ResponseHead& head) {
  auto value = head.headers.Find("Retry-After");
  if (!value || value->empty() || value->size() > 6) {
    return -1;
  }
  int64_t seconds = 0;
  for (char c : *value) {
    if (c < '0' || c > '9') {
      return -1;  // HTTP-date form: ignored, our backoff applies
    }
    seconds = seconds * 10 + (c - '0');
  }
  return seconds * 1000;
}

}  // namespace

std::string DescribeOutcome(const DialOutcome& o) {
  switch (o.kind) {
    case DialOutcome::Kind::kRejected:
      return "gateway answered " + std::to_string(o.status) + " " + o.detail;
    case DialOutcome::Kind::kClosedEarly:
      return "gateway closed the connection early (busy): " + o.detail;
    default:
      return o.detail;
  }
}

void UpgradeDialer::Start(BuildRequest build_request, Done done) {
  build_request_ = std::move(build_request);
  done_ = std::move(done);
  state_ = State::kConnecting;
  // Resolved afresh on every dial (off the loop): a gateway that moved is found again.
  connector_.Start(
      target_.host, target_.port, target_.proxy, kConnectAttemptTimeoutMs,
      [this](int fd, int error, const std::string& detail) { OnConnected(fd, error, detail); });
}

void UpgradeDialer::OnConnected(int fd, int error, const std::string& detail) {
  if (fd < 0) {
    Finish({.error = error, .detail = detail});
    return;
  }
  transport_ = factory_.Wrap(fd);
  if (!transport_) {
    Finish({.detail = "cannot create a TLS session"});
    return;
  }
  state_ = State::kHandshake;
  watch_.Start(loop_, transport_->fd(), POLLOUT, [this](short) { Step(); });
}

// Advances as far as the socket allows, then waits for what the blocked operation needs.
void UpgradeDialer::Step() {
  IoStatus status = IoStatus::kOk;
  while (status == IoStatus::kOk) {
    switch (state_) {
      case State::kHandshake:
        status = transport_->Handshake();
        if (status == IoStatus::kOk) {
          request_ = build_request_(*transport_);
          if (request_.empty()) {
            Finish({.detail = "TLS: no keying material exporter"});
            return;
          }
          state_ = State::kSending;
        } else if (status == IoStatus::kEof) {
          Finish({.kind = DialOutcome::Kind::kClosedEarly, .detail = transport_->error_text()});
          return;
        } else if (status == IoStatus::kError) {
          Finish({.detail = "TLS: " + transport_->error_text()});
          return;
        }
        break;
      case State::kSending: {
        size_t n = 0;
        std::span<const uint8_t> rest(
            reinterpret_cast<const uint8_t*>(request_.data()) + request_sent_,
            request_.size() - request_sent_);
        status = transport_->Write(rest, &n);
        request_sent_ += n;
        if (status == IoStatus::kOk && request_sent_ == request_.size()) {
          state_ = State::kReading;
        }
        break;
      }
      case State::kReading: {
        // Read at most up to the head limit: the parser reports kTooLarge past it.
        uint8_t buf[2048];
        size_t room = proto::kMaxHeadBytes + sizeof(buf) - response_.size();
        size_t n = 0;
        status = transport_->Read(std::span<uint8_t>(buf, std::min(room, sizeof(buf))), &n);
        if (status == IoStatus::kOk) {
          response_.append(reinterpret_cast<const char*>(buf), n);
          proto::ResponseHead head;
          proto::HeadResult result = proto::ParseResponseHead(response_, &head);
          if (result == proto::HeadResult::kComplete) {
            state_ = State::kDone;
            if (head.status == 101) {
              Finish({.kind = DialOutcome::Kind::kUpgraded, .status = 101});
            } else {
              Finish({.kind = DialOutcome::Kind::kRejected,
                      .status = head.status,
                      .retry_after_ms = ParseRetryAfterMs(head),
                      .detail = std::string(head.reason)});
            }
            return;
          }
          if (result != proto::HeadResult::kNeedMore) {
            Finish({.detail = "bad response head: " + std::string(proto::HeadResultName(result))});
            return;
          }
        } else if (status == IoStatus::kEof || status == IoStatus::kError) {
          bool early = response_.empty();
          Finish({.kind = early ? DialOutcome::Kind::kClosedEarly : DialOutcome::Kind::kFailed,
                  .detail = status == IoStatus::kEof ? "closed before the response head"
                                                     : transport_->error_text()});
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

void UpgradeDialer::Finish(DialOutcome outcome) {
  state_ = State::kDone;
  watch_.Stop();
  connector_.Cancel();
  // Keep the response bytes in this frame: the callback may destroy the dialer, and `head`
  // and `leftover` point into them.
  std::string response = std::move(response_);
  proto::ResponseHead head;
  const proto::ResponseHead* head_ptr = nullptr;
  std::span<const uint8_t> leftover;
  std::unique_ptr<Transport> transport;
  if (outcome.kind == DialOutcome::Kind::kUpgraded) {
    proto::ParseResponseHead(response, &head);
    head_ptr = &head;
    leftover = std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(response.data()) + head.head_bytes,
        response.size() - head.head_bytes);
    transport = std::move(transport_);
  }
  Done done = std::move(done_);
  done(std::move(outcome), std::move(transport), head_ptr, leftover);
}

}  // namespace camtunnel::agent
