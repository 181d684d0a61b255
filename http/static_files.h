// Static files for the operator console: a route handler that serves regular files under one
// directory, with a content type by extension. Safe against path traversal twice over: the
// request path is refused unless every segment is a plain name (no "..", ".", empty segment,
// hidden name, backslash, '%' escape or control character), and the file is opened beneath the
// directory without following any symbolic link (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
// Files are read synchronously on the shard's thread: console assets are few and small (capped
// at kMaxStaticFileBytes), and an admin listener carries no media traffic to delay.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "http/router.h"

namespace camtunnel::http {

inline constexpr size_t kMaxStaticFileBytes = size_t{8} << 20;

// For a route whose pattern ends in a rest capture named `capture` ("/console/{file...}").
// GET only; a missing or refused file is 404, a directory too.
Handler StaticFiles(std::string root_dir, std::string capture = "file");

// "text/html; charset=utf-8" for "index.html"; "application/octet-stream" when unknown.
std::string_view ContentTypeFor(std::string_view file_name);
// True if `relative` ("css/app.css") names a file by plain segments only (see above).
bool IsSafeRelativePath(std::string_view relative);

}  // namespace camtunnel::http
