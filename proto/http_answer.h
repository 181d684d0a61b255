// The one way camtunnel's HTTP servers write an answer: status line with the phrase from
// http_status.h, Content-Type, Content-Length (or none, for a stream that ends with the
// connection, such as server-sent events), Connection, any extra fields, the body. And the one
// shape of an error body: {"error":"..."} with a trailing newline. Pure formatting, no I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proto/http_head.h"

namespace camtunnel::proto {

struct HttpAnswerHead {
  int status = 200;
  std::string_view content_type;  // omitted when empty
  // Omitted when nullopt: the body then runs until the connection ends.
  std::optional<size_t> content_length;
  bool keep_alive = false;                    // "Connection: keep-alive" instead of "close"
  std::span<const HeaderField> extra_fields;  // written as given, after the others
};

// The head, through the blank line.
std::string FormatHttpAnswerHead(const HttpAnswerHead& head);
// Head and body, with Content-Length set to the body's size.
std::string FormatHttpAnswer(int status, std::string_view content_type, std::string_view body,
                             bool keep_alive = false, std::span<const HeaderField> extra = {});

// {"error":"<message>"}\n, the message escaped as a JSON string.
std::string JsonErrorBody(std::string_view message);
// Appends `text` as a quoted JSON string (control characters as \u00XX; bytes >= 0x80 as they
// are, so UTF-8 passes through).
void AppendJsonString(std::string* out, std::string_view text);

}  // namespace camtunnel::proto
