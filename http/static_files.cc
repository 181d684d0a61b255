// See static_files.h.
#include "http/static_files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "http/exchange.h"

namespace camtunnel::http {
namespace {

struct TypeByExtension {
  std::string_view extension;
  std::string_view type;
};
constexpr TypeByExtension kTypes[] = {
    {".html", "text/html; charset=utf-8"},
    {".htm", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".webp", "image/webp"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".woff", "font/woff"},
    {".wasm", "application/wasm"},
};

bool IsSafeSegment(std::string_view seg) {
  if (seg.empty() || seg.front() == '.') {
    return false;  // "", ".", ".." and hidden files
  }
  for (const char c : seg) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\' || c == '%') {
      return false;
    }
  }
  return true;
}

// Opens `relative` beneath `dir_fd` without leaving it and without following symbolic links.
int OpenBeneath(int dir_fd, const std::string& relative) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, dir_fd, relative.c_str(), &how, sizeof(how)));
}

}  // namespace

std::string_view ContentTypeFor(std::string_view file_name) {
  const size_t dot = file_name.rfind('.');
  if (dot != std::string_view::npos) {
    std::string ext(file_name.substr(dot));
    for (char& c : ext) {
      c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    for (const TypeByExtension& t : kTypes) {
      if (t.extension == ext) {
        return t.type;
      }
    }
  }
  return "application/octet-stream";
}

bool IsSafeRelativePath(std::string_view relative) {
  for (;;) {
    const size_t slash = relative.find('/');
    if (!IsSafeSegment(relative.substr(0, slash))) {
      return false;
    }
    if (slash == std::string_view::npos) {
      return true;
    }
    relative.remove_prefix(slash + 1);
  }
}

Handler StaticFiles(std::string root_dir, std::string capture) {
  return [root = std::move(root_dir), capture = std::move(capture)](Exchange& ex) {
    if (ex.method() != "GET") {
      const proto::HeaderField allow[] = {{"Allow", "GET"}};
      ex.Error(405, "GET only", allow);
      return;
    }
    const std::string_view relative = ex.param(capture);
    if (!IsSafeRelativePath(relative)) {
      ex.Error(404, "not found");
      return;
    }
    const int dir = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
      ex.Error(404, "not found");
      return;
    }
    const int fd = OpenBeneath(dir, std::string(relative));
    close(dir);
    struct stat st {};
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd >= 0) {
        close(fd);
      }
      ex.Error(404, "not found");
      return;
    }
    if (static_cast<size_t>(st.st_size) > kMaxStaticFileBytes) {
      close(fd);
      ex.Error(500, "file too large to serve");
      return;
    }
    std::string body(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < body.size()) {
      const ssize_t n = read(fd, body.data() + got, body.size() - got);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        break;
      }
      got += static_cast<size_t>(n);
    }
    close(fd);
    body.resize(got);
    static const proto::HeaderField kHeaders[] = {{"Cache-Control", "no-cache"},
                                                  {"X-Content-Type-Options", "nosniff"}};
    ex.Respond(200, ContentTypeFor(relative), body, kHeaders);
  };
}

}  // namespace camtunnel::http
