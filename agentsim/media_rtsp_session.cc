#include "agentsim/media_rtsp_session.h"

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "agentsim/dial.h"
#include "runtime/clock.h"

namespace camtunnel::agentsim {
namespace {

constexpr size_t kInterleaveHeaderBytes = 4;

}  // namespace

std::string FrontendRtspUrl(const Options& options, std::string_view agent_id) {
  return absl::StrCat("rtsp://", options.frontend_text, "/", std::string(agent_id), "/stream1");
}

MediaRtspSession::MediaRtspSession(SimContext& ctx, MediaObserver& observer,
                                   const AgentIdentity& agent, uint64_t play_ms)
    : ctx_(ctx),
      observer_(observer),
      play_ms_(play_ms),
      url_(FrontendRtspUrl(ctx.options, agent.id)),
      checker_(agent.tag) {
  timer_.set_callback([this] { OnTimer(); });
}

void MediaRtspSession::Start() {
  ++ctx_.stats.media.rtsp_active;
  started_us_ = runtime::MonotonicNs() / 1000;
  const auto timeout_ms = static_cast<uint64_t>(ctx_.options.open_timeout_s * 1000);
  ctx_.shard.timers().Arm(timer_, ctx_.shard.now_ms(), timeout_ms);
  Dial(ctx_.shard, ctx_.options.frontend, std::nullopt, nullptr, "", timeout_ms, this,
       [this](runtime::Stream* s, int error) {
         if (s == nullptr) {
           if (!ended_) {
             OpenResolved(error == ETIMEDOUT ? "timeout" : "connect_error");
             End("failed_connect", error);
           }
           Finished();
           return;
         }
         stream_ = s;
         if (ended_) {
           s->Close(0);  // timed out or stopped while connecting
         }
       });
}

void MediaRtspSession::OnStreamReady(runtime::Stream& /*stream*/) {
  step_ = Step::kOptions;
  Request("OPTIONS", url_, "");
}

void MediaRtspSession::Request(std::string_view method, const std::string& url,
                               const std::string& headers) {
  std::string r = absl::StrCat(std::string(method), " ", url, " RTSP/1.0\r\nCSeq: ", ++cseq_,
                               "\r\nUser-Agent: camtunnel-agentsim\r\n", headers);
  if (!session_.empty()) {
    absl::StrAppend(&r, "Session: ", session_, "\r\n");
  }
  r += "\r\n";
  stream_->Write(r);
}

void MediaRtspSession::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  ctx_.stats.media.bytes_received += bytes.size();
  // Most reads hold whole packets: parse them in place and carry over only the incomplete tail.
  if (buf_.empty()) {
    const size_t used = Consume(bytes);
    if (!ended_ && used < bytes.size()) {
      buf_.assign(bytes.begin() + static_cast<ptrdiff_t>(used), bytes.end());
    }
    return;
  }
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  const size_t used = Consume(buf_);
  if (!ended_) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(used));
  }
}

size_t MediaRtspSession::Consume(std::span<const uint8_t> data) {
  size_t pos = 0;
  while (pos < data.size() && !ended_) {
    const std::span<const uint8_t> rest = data.subspan(pos);
    if (rest[0] == '$') {
      if (rest.size() < kInterleaveHeaderBytes) {
        break;
      }
      const size_t len = static_cast<size_t>(rest[2]) << 8 | rest[3];
      if (rest.size() < kInterleaveHeaderBytes + len) {
        break;
      }
      if (rest[1] == 0) {
        checker_.OnPacket(rest.subspan(kInterleaveHeaderBytes, len));
      }
      pos += kInterleaveHeaderBytes + len;
      continue;
    }
    const std::string_view text(reinterpret_cast<const char*>(rest.data()), rest.size());
    proto::ResponseHead head;
    const proto::HeadResult r = proto::ParseResponseHead(text, &head);
    if (r == proto::HeadResult::kNeedMore && rest[0] == 'R') {
      break;
    }
    if (r != proto::HeadResult::kComplete) {
      // Neither an interleaved frame nor an answer: the byte stream itself is damaged, and
      // there is no way to find the next frame boundary.
      if (open_resolved_) {
        checker_.OnCorruptFraming();
      } else {
        OpenResolved("bad_answer");
      }
      End("framing_error", EPROTO);
      break;
    }
    uint64_t body = 0;
    if (auto cl = head.headers.Find("Content-Length")) {
      body = proto::ParseContentLength(*cl).value_or(0);
    }
    if (rest.size() < head.head_bytes + body) {
      break;
    }
    OnResponse(head, text.substr(head.head_bytes, body));
    pos += head.head_bytes + body;
  }
  return pos;
}

void MediaRtspSession::OpenResolved(std::string_view result) {
  if (open_resolved_) {
    return;
  }
  open_resolved_ = true;
  const uint64_t latency = runtime::MonotonicNs() / 1000 - started_us_;
  observer_.OnOpenResult(*this, result, latency);
}

void MediaRtspSession::OnResponse(const proto::ResponseHead& head, std::string_view body) {
  const auto timeout_ms = static_cast<uint64_t>(ctx_.options.open_timeout_s * 1000);
  if (step_ == Step::kOptions) {
    OpenResolved(head.status == 200 ? "ok" : "rtsp_" + std::to_string(head.status));
  }
  if (step_ == Step::kPlaying) {
    return;  // keep-alive answers
  }
  if (head.status != 200 && step_ != Step::kTeardown) {
    End(absl::StrCat("failed_status_", head.status), 0);
    return;
  }
  switch (step_) {
    case Step::kOptions:
      step_ = Step::kDescribe;
      Request("DESCRIBE", url_, "Accept: application/sdp\r\n");
      break;
    case Step::kDescribe: {
      if (body.find("H264/90000") == std::string_view::npos ||
          body.find("sprop-parameter-sets=") == std::string_view::npos) {
        End("failed_sdp", EPROTO);
        return;
      }
      // SETUP goes to the camera's own URL (Content-Base), as players do; the gateway passes
      // it unchanged because it is not a frontend URL.
      content_base_ = std::string(head.headers.Find("Content-Base").value_or(url_ + "/"));
      step_ = Step::kSetup;
      Request("SETUP", content_base_ + "trackID=0",
              "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n");
      break;
    }
    case Step::kSetup: {
      const std::string_view s = head.headers.Find("Session").value_or("");
      session_ = std::string(s.substr(0, s.find(';')));
      if (session_.empty()) {
        End("failed_no_session", EPROTO);
        return;
      }
      step_ = Step::kPlay;
      Request("PLAY", content_base_, "Range: npt=0.000-\r\n");
      break;
    }
    case Step::kPlay: {
      step_ = Step::kPlaying;
      const uint64_t now = ctx_.shard.now_ms();
      play_until_ms_ = play_ms_ == 0 ? UINT64_MAX : now + play_ms_;
      next_keepalive_ms_ = now + kKeepAliveFirstMs;
      if (stop_requested_) {
        play_until_ms_ = now;
      }
      OnTimer();
      return;
    }
    case Step::kTeardown:
      End("completed", 0);
      return;
    case Step::kConnecting:
    case Step::kPlaying:
    case Step::kDone:
      return;
  }
  ctx_.shard.timers().Arm(timer_, ctx_.shard.now_ms(), timeout_ms);
}

void MediaRtspSession::OnTimer() {
  const uint64_t now = ctx_.shard.now_ms();
  switch (step_) {
    case Step::kConnecting:
    case Step::kOptions:
      OpenResolved("timeout");
      End("failed_timeout", ETIMEDOUT);
      return;
    case Step::kDescribe:
    case Step::kSetup:
    case Step::kPlay:
      End("failed_timeout", ETIMEDOUT);
      return;
    case Step::kPlaying:
      if (now >= play_until_ms_) {
        step_ = Step::kTeardown;
        Request("TEARDOWN", content_base_, "");
        ctx_.shard.timers().Arm(timer_, now, kTeardownTimeoutMs);
        return;
      }
      if (now >= next_keepalive_ms_) {
        // Real players keep the camera's session alive this way; it also proves an answer can
        // be found between the interleaved frames.
        Request("GET_PARAMETER", content_base_, "");
        next_keepalive_ms_ = now + kKeepAliveMs;
      }
      ctx_.shard.timers().Arm(timer_, now, std::min(play_until_ms_, next_keepalive_ms_) - now);
      return;
    case Step::kTeardown:
      End("teardown_timeout", ETIMEDOUT);
      return;
    case Step::kDone:
      return;
  }
}

void MediaRtspSession::Stop() {
  stop_requested_ = true;
  if (step_ == Step::kPlaying) {
    play_until_ms_ = ctx_.shard.now_ms();
    OnTimer();
  } else if (step_ != Step::kTeardown) {
    End("stopped", 0);
  }
}

void MediaRtspSession::OnStreamEof(runtime::Stream& /*stream*/) {
  if (!open_resolved_) {
    OpenResolved("closed");
  }
  End(step_ == Step::kPlaying ? "interrupted" : "failed_closed", 0);
}

IntegrityCounts MediaRtspSession::LiveIntegrity() const {
  return ended_ ? IntegrityCounts{} : checker_.Counts();
}

void MediaRtspSession::End(std::string_view outcome, int error) {
  if (ended_) {
    return;
  }
  ended_ = true;
  step_ = Step::kDone;
  ctx_.shard.timers().Cancel(timer_);
  ++ctx_.stats.media.sessions[std::string(outcome)];
  ctx_.stats.media.integrity += checker_.Counts();
  // Without a stream the connect is still in flight: its callback finishes the session.
  if (stream_ != nullptr) {
    stream_->Close(error);
  }
}

void MediaRtspSession::OnStreamClosed(runtime::Stream& /*stream*/, int error) {
  if (!open_resolved_) {
    OpenResolved(error == 0 ? "closed" : "reset");
  }
  if (!ended_) {
    End(step_ == Step::kPlaying ? "interrupted" : "failed_reset", 0);
  }
  stream_ = nullptr;
  Finished();
}

void MediaRtspSession::Finished() {
  --ctx_.stats.media.rtsp_active;
  observer_.OnMediaEnded(*this);
  // A close can complete synchronously inside one of our own stream callbacks: free the object
  // only once the current batch has unwound.
  ctx_.shard.Defer([this] { delete this; });
}

}  // namespace camtunnel::agentsim
