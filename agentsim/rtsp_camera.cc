#include "agentsim/rtsp_camera.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "agentsim/h264_sample.h"
#include "proto/encoding.h"

namespace camtunnel::agentsim {
namespace {

// A frame that is this late is not caught up with: a camera encodes live, it does not burst.
constexpr uint64_t kMaxLagUs = 1000000;

std::string NewSessionId() {
  uint8_t raw[8];
  proto::RandomBytes(raw);
  return proto::HexEncode(raw);
}

uint32_t NewSsrc() {
  uint32_t v = 0;
  proto::RandomBytes({reinterpret_cast<uint8_t*>(&v), sizeof(v)});
  return v;
}

std::string Sdp() {
  return absl::StrCat(
      "v=0\r\n"
      "o=- 1 1 IN IP4 127.0.0.1\r\n"
      "s=camtunnel-agentsim\r\n"
      "c=IN IP4 0.0.0.0\r\n"
      "t=0 0\r\n"
      "a=control:*\r\n"
      "a=range:npt=0-\r\n"
      "m=video 0 RTP/AVP 96\r\n"
      "a=rtpmap:96 H264/90000\r\n"
      "a=fmtp:96 ",
      SampleFmtp(),
      "\r\n"
      "a=control:trackID=0\r\n");
}

}  // namespace

RtspCamera::RtspCamera(SimContext& ctx, runtime::Stream& stream, const AgentIdentity& agent)
    : ctx_(ctx), stream_(stream), packetizer_(ctx.options.video, NewSsrc(), agent.tag) {
  ++ctx_.stats.cameras.rtsp_sessions;
  frame_interval_us_ = 1000000 / std::max(1u, ctx_.options.video.fps);
  frame_timer_.set_callback([this] { OnFrameTimer(); });
}

void RtspCamera::OnBytes(std::span<const uint8_t> bytes) {
  in_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  size_t pos = 0;
  while (pos < in_.size() && stream_.open()) {
    const std::string_view rest = std::string_view(in_).substr(pos);
    if (rest[0] == '$') {
      // The client's interleaved RTCP: skipped, as a camera that ignores receiver reports.
      if (rest.size() < 4) {
        break;
      }
      const size_t len = static_cast<uint8_t>(rest[2]) << 8 | static_cast<uint8_t>(rest[3]);
      if (rest.size() < 4 + len) {
        break;
      }
      pos += 4 + len;
      continue;
    }
    if (rest[0] == '\r' || rest[0] == '\n') {
      ++pos;
      continue;
    }
    proto::RequestHead head;
    const proto::HeadResult r = proto::ParseRequestHead(rest, &head);
    if (r == proto::HeadResult::kNeedMore) {
      break;
    }
    if (r != proto::HeadResult::kComplete) {
      Reply(400, "Bad Request", "", "");
      stream_.Finish();
      return;
    }
    uint64_t body = 0;
    if (auto cl = head.headers.Find("Content-Length")) {
      body = proto::ParseContentLength(*cl).value_or(0);
    }
    if (rest.size() < head.head_bytes + body) {
      break;
    }
    OnRequest(head);
    pos += head.head_bytes + body;
  }
  in_.erase(0, pos);
}

void RtspCamera::Reply(int status, std::string_view reason, std::string_view cseq,
                       const std::string& headers, std::string_view body) {
  std::string r = absl::StrCat("RTSP/1.0 ", status, " ", std::string(reason), "\r\n");
  if (!cseq.empty()) {
    absl::StrAppend(&r, "CSeq: ", std::string(cseq), "\r\n");
  }
  absl::StrAppend(&r, "Server: camtunnel-agentsim\r\n", headers);
  if (!body.empty()) {
    absl::StrAppend(&r, "Content-Length: ", body.size(), "\r\n\r\n", std::string(body));
  } else {
    r += "\r\n";
  }
  stream_.Write(r);
}

void RtspCamera::OnRequest(const proto::RequestHead& head) {
  ++ctx_.stats.cameras.rtsp_requests;
  const std::string cseq(head.headers.Find("CSeq").value_or(""));
  const std::string session = absl::StrCat("Session: ", session_id_, ";timeout=60\r\n");
  const std::string_view m = head.method;
  if (m == "OPTIONS") {
    Reply(200, "OK", cseq,
          "Public: OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, TEARDOWN\r\n");
  } else if (m == "DESCRIBE") {
    // Content-Base is the URL as we received it (the gateway rewrote path-form URLs to ours).
    std::string base(head.target);
    if (base.empty() || base.back() != '/') {
      base += '/';
    }
    track_url_ = base + "trackID=0";
    Reply(200, "OK", cseq,
          absl::StrCat("Content-Base: ", base, "\r\nContent-Type: application/sdp\r\n"), Sdp());
  } else if (m == "SETUP") {
    const std::string_view transport = head.headers.Find("Transport").value_or("");
    if (transport.find("RTP/AVP/TCP") == std::string_view::npos ||
        transport.find("interleaved") == std::string_view::npos) {
      // UDP would leave the tunnel: this camera speaks TCP interleaved only.
      Reply(461, "Unsupported Transport", cseq, "");
      return;
    }
    if (session_id_.empty()) {
      session_id_ = NewSessionId();
    }
    setup_ = true;
    char ssrc[16];
    std::snprintf(ssrc, sizeof(ssrc), "%08" PRIX32, packetizer_.ssrc());
    Reply(200, "OK", cseq,
          absl::StrCat("Session: ", session_id_, ";timeout=60\r\n",
                       "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=", ssrc, "\r\n"));
  } else if (m == "PLAY") {
    if (!setup_) {
      Reply(455, "Method Not Valid in This State", cseq, "");
      return;
    }
    Reply(200, "OK", cseq,
          absl::StrCat(session, "Range: npt=0.000-\r\nRTP-Info: url=",
                       track_url_.empty() ? std::string(head.target) : track_url_,
                       ";seq=", packetizer_.next_rtp_seq(),
                       ";rtptime=", packetizer_.next_timestamp(), "\r\n"));
    StartPlaying();
  } else if (m == "PAUSE") {
    playing_ = false;
    ctx_.shard.timers().Cancel(frame_timer_);
    Reply(200, "OK", cseq, session);
  } else if (m == "GET_PARAMETER" || m == "SET_PARAMETER") {
    Reply(200, "OK", cseq, session_id_.empty() ? "" : session);
  } else if (m == "TEARDOWN") {
    playing_ = false;
    ctx_.shard.timers().Cancel(frame_timer_);
    Reply(200, "OK", cseq, session_id_.empty() ? "" : session);
  } else {
    Reply(501, "Not Implemented", cseq, "");
  }
}

void RtspCamera::StartPlaying() {
  if (playing_) {
    return;
  }
  playing_ = true;
  next_frame_us_ = ctx_.shard.now_ms() * 1000;
  OnFrameTimer();
}

void RtspCamera::OnFrameTimer() {
  if (!playing_ || !stream_.open()) {
    return;
  }
  const uint64_t now_us = ctx_.shard.now_ms() * 1000;
  if (now_us > next_frame_us_ + kMaxLagUs) {
    const uint64_t missed = (now_us - next_frame_us_) / frame_interval_us_;
    ctx_.stats.cameras.frames_skipped += missed;
    next_frame_us_ += missed * frame_interval_us_;
  }
  while (next_frame_us_ <= now_us) {
    SendFrame();
    next_frame_us_ += frame_interval_us_;
  }
  const uint64_t wait_ms = (next_frame_us_ - now_us + 999) / 1000;
  ctx_.shard.timers().Arm(frame_timer_, ctx_.shard.now_ms(), wait_ms);
}

void RtspCamera::SendFrame() {
  if (stream_.over_high_watermark()) {
    // The media server (or the path to it) is slower than the stream: skip the frame as a live
    // encoder would, without gaps in the sequence numbers, so this is never a "loss".
    ++ctx_.stats.cameras.frames_skipped;
    return;
  }
  packetizer_.NextFrame(&frame_, &packets_);
  ++ctx_.stats.cameras.frames_sent;
  ctx_.stats.cameras.packets_sent += packets_.size();
  if (ctx_.options.camera_fault == CameraFault::kNone) {
    packets_seen_ += packets_.size();
    ctx_.stats.cameras.bytes_sent += frame_.size();
    stream_.Write(frame_);
    return;
  }
  WriteWithFaults();
}

void RtspCamera::WriteWithFaults() {
  out_.clear();
  auto append = [this](std::span<const uint8_t> p) { out_.insert(out_.end(), p.begin(), p.end()); };
  for (const RtpPacketizer::Packet& p : packets_) {
    const std::span<const uint8_t> bytes(frame_.data() + p.offset, p.size);
    const bool fault = ++packets_seen_ % ctx_.options.fault_every == 0;
    if (fault) {
      ++ctx_.stats.cameras.faults_injected;
    }
    switch (fault ? ctx_.options.camera_fault : CameraFault::kNone) {
      case CameraFault::kDrop:
        break;
      case CameraFault::kDuplicate:
        append(bytes);
        append(bytes);
        break;
      case CameraFault::kReorder:
        held_.assign(bytes.begin(), bytes.end());
        break;
      case CameraFault::kNone:
        append(bytes);
        if (!held_.empty()) {
          append(held_);
          held_.clear();
        }
        break;
    }
  }
  ctx_.stats.cameras.bytes_sent += out_.size();
  stream_.Write(out_);
}

void RtspCamera::OnEof() {
  // The media server is gone (after TEARDOWN, or not): end our side too.
  playing_ = false;
  ctx_.shard.timers().Cancel(frame_timer_);
  stream_.ShutdownWrite();
}

}  // namespace camtunnel::agentsim
