#include "agentsim/media_snapshot.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "agentsim/dial.h"
#include "agentsim/http_camera.h"
#include "proto/encoding.h"
#include "proto/http_head.h"
#include "runtime/clock.h"

namespace camtunnel::agentsim {

MediaSnapshot::MediaSnapshot(SimContext& ctx, MediaObserver& observer, const AgentIdentity& agent)
    : ctx_(ctx), observer_(observer), agent_(agent) {
  timer_.set_callback([this] {
    OpenResolved("timeout");
    End("timeout", ETIMEDOUT);
  });
}

MediaSnapshot::~MediaSnapshot() { EVP_MD_CTX_free(sha_); }

void MediaSnapshot::Start() {
  ++ctx_.stats.media.snapshots_active;
  started_us_ = runtime::MonotonicNs() / 1000;
  // One deadline for the whole request: snapshots are small and an answer that trickles in
  // is a failure for a poller too.
  const auto timeout_ms = static_cast<uint64_t>(ctx_.options.open_timeout_s * 1000);
  ctx_.shard.timers().Arm(timer_, ctx_.shard.now_ms(), timeout_ms);
  Dial(ctx_.shard, ctx_.options.frontend, std::nullopt, nullptr, "", timeout_ms, this,
       [this](runtime::Stream* s, int error) {
         if (s == nullptr) {
           if (!ended_) {
             OpenResolved(error == ETIMEDOUT ? "timeout" : "connect_error");
             End("failed", error);
           }
           Finished();
           return;
         }
         stream_ = s;
         if (ended_) {
           s->Close(0);
         }
       });
}

void MediaSnapshot::Stop() {
  if (!ended_) {
    OpenResolved("stopped");
    End("stopped", 0);
  }
}

void MediaSnapshot::OnStreamReady(runtime::Stream& stream) {
  stream.Write(absl::StrCat("GET /", agent_.id, std::string(kSnapshotPath),
                            " HTTP/1.1\r\nHost: ", ctx_.options.frontend_text,
                            "\r\nUser-Agent: camtunnel-agentsim\r\nConnection: close\r\n\r\n"));
}

void MediaSnapshot::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  ctx_.stats.media.bytes_received += bytes.size();
  if (ended_) {
    return;
  }
  if (in_body_) {
    OnBody(bytes);
  } else {
    OnHead(bytes);
  }
}

void MediaSnapshot::OnHead(std::span<const uint8_t> bytes) {
  head_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  proto::ResponseHead head;
  const proto::HeadResult r = proto::ParseResponseHead(head_, &head);
  if (r == proto::HeadResult::kNeedMore) {
    return;
  }
  if (r != proto::HeadResult::kComplete) {
    OpenResolved("bad_answer");
    End("failed", EPROTO);
    return;
  }
  if (head.status != 200) {
    OpenResolved("http_" + std::to_string(head.status));
    End("failed", 0);
    return;
  }
  OpenResolved("ok");
  const SnapshotImage& img = ctx_.snapshot;
  const auto length = proto::ParseContentLength(head.headers.Find("Content-Length").value_or(""));
  // The headers are part of what must arrive intact: a wrong digest, agent or length is as
  // corrupt as a wrong byte.
  if (head.headers.Find("X-Checksum") != "sha256=" + img.sha256_hex ||
      head.headers.Find("X-Agent") != agent_.id || length != img.body.size()) {
    ++ctx_.stats.media.integrity.corrupt;
    End("corrupt", 0);
    return;
  }
  in_body_ = true;
  body_left_ = *length;
  sha_ = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
  const std::string rest = head_.substr(head.head_bytes);
  head_.clear();
  OnBody({reinterpret_cast<const uint8_t*>(rest.data()), rest.size()});
}

void MediaSnapshot::OnBody(std::span<const uint8_t> bytes) {
  if (bytes.size() > body_left_) {
    ++ctx_.stats.media.integrity.corrupt;  // more than Content-Length: not the camera's answer
    End("corrupt", EPROTO);
    return;
  }
  EVP_DigestUpdate(sha_, bytes.data(), bytes.size());
  body_left_ -= bytes.size();
  if (body_left_ > 0) {
    return;
  }
  uint8_t digest[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(sha_, digest, &n);
  if (proto::HexEncode({digest, n}) != ctx_.snapshot.sha256_hex) {
    ++ctx_.stats.media.integrity.corrupt;
    End("corrupt", 0);
    return;
  }
  ctx_.stats.media.snapshot_bytes_verified += ctx_.snapshot.body.size();
  End("ok", 0);
}

void MediaSnapshot::OnStreamEof(runtime::Stream& /*stream*/) {
  OpenResolved("closed");
  End(in_body_ ? "truncated" : "failed", 0);
}

void MediaSnapshot::OpenResolved(std::string_view result) {
  if (open_resolved_) {
    return;
  }
  open_resolved_ = true;
  observer_.OnOpenResult(*this, result, runtime::MonotonicNs() / 1000 - started_us_);
}

void MediaSnapshot::End(std::string_view outcome, int error) {
  if (ended_) {
    return;
  }
  ended_ = true;
  ctx_.shard.timers().Cancel(timer_);
  ++ctx_.stats.media.snapshots[std::string(outcome)];
  if (stream_ != nullptr) {
    stream_->Close(error);
  }
}

void MediaSnapshot::OnStreamClosed(runtime::Stream& /*stream*/, int error) {
  OpenResolved(error == 0 ? "closed" : "reset");
  End(in_body_ ? "truncated" : "failed", 0);
  stream_ = nullptr;
  Finished();
}

void MediaSnapshot::Finished() {
  --ctx_.stats.media.snapshots_active;
  observer_.OnMediaEnded(*this);
  ctx_.shard.Defer([this] { delete this; });
}

}  // namespace camtunnel::agentsim
