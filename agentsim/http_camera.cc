#include "agentsim/http_camera.h"

#include "absl/strings/str_cat.h"
#include "proto/http_head.h"

namespace camtunnel::agentsim {

void HttpCamera::OnBytes(std::span<const uint8_t> bytes) {
  if (answered_) {
    return;  // one request per connection; the rest is drained by Finish()
  }
  head_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  proto::RequestHead head;
  const proto::HeadResult r = proto::ParseRequestHead(head_, &head);
  if (r == proto::HeadResult::kNeedMore) {
    return;
  }
  answered_ = true;
  ++ctx_.stats.cameras.http_requests;
  const bool ok = r == proto::HeadResult::kComplete &&
                  (head.method == "GET" || head.method == "HEAD") && head.target == kSnapshotPath;
  if (!ok) {
    const int status = r == proto::HeadResult::kComplete ? 404 : 400;
    stream_.Write(absl::StrCat("HTTP/1.1 ", status, status == 404 ? " Not Found" : " Bad Request",
                               "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    stream_.Finish();
    return;
  }
  const SnapshotImage& img = ctx_.snapshot;
  stream_.Write(absl::StrCat(
      "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: ", img.body.size(),
      "\r\nX-Checksum: sha256=", img.sha256_hex, "\r\nX-Agent: ", agent_.id,
      "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"));
  if (head.method == "GET") {
    stream_.Write(img.body);
    ctx_.stats.cameras.bytes_sent += img.body.size();
  }
  stream_.Finish();
}

}  // namespace camtunnel::agentsim
