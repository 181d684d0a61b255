// See agent_state.h. The format is line-oriented text ("key=value", a version line first) so an
// operator can inspect it on the camera; unknown keys are an error, not ignored, because a file
// this small that holds unexpected content has been tampered with or written by a newer agent.
#include "agent/agent_state.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proto/encoding.h"
#include "proto/identifiers.h"

namespace camtunnel::agent {
namespace {

constexpr std::string_view kHeader = "camtunnel-agent-state 1";
// Identity lines, up to 8 sealed Streamers of about 120 bytes (240 hex) each and up to 16
// manager URLs of at most 255 bytes.
constexpr size_t kMaxFile = 16384;

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

bool SyncDirectory(const std::string& path) {
  const int dir = ::open(DirectoryOf(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    return false;
  }
  const bool ok = ::fsync(dir) == 0;
  ::close(dir);
  return ok;
}

}  // namespace

std::optional<AgentState> LoadAgentState(const std::string& path, std::string* error) {
  error->clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) {
      *error = "cannot open state file " + path + ": " + std::strerror(errno);
    }
    return std::nullopt;
  }
  std::string text(kMaxFile + 1, '\0');
  size_t have = 0;
  ssize_t n;
  while (have < text.size() && (n = ::read(fd, text.data() + have, text.size() - have)) > 0) {
    have += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(have);
  auto fail = [&](std::string why) {
    OPENSSL_cleanse(text.data(), text.size());
    *error = "state file " + path + ": " + why;
    return std::nullopt;
  };
  if (have > kMaxFile) {
    return fail("larger than 16384 bytes");
  }
  std::string_view rest = text;
  AgentState s;
  bool header = false, have_secret = false;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      return fail("last line not terminated (a partial write?)");
    }
    const std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    if (!header) {
      if (line != kHeader) {
        return fail("not a camtunnel agent state file (version 1)");
      }
      header = true;
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return fail("line without '='");
    }
    const std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "agent_id") {
      s.agent_id = std::string(value);
    } else if (key == "manager_url") {
      s.manager_url = std::string(value);
    } else if (key == "agent_secret") {
      auto bytes = proto::HexDecode(value);
      if (!bytes || bytes->size() != s.secret.size()) {
        return fail("agent_secret is not 64 hex characters");
      }
      std::copy(bytes->begin(), bytes->end(), s.secret.begin());
      OPENSSL_cleanse(bytes->data(), bytes->size());
      have_secret = true;
    } else if (key == "last_streamer") {
      s.last_streamer = std::string(value);
    } else if (key == "streamer") {
      auto bytes = proto::HexDecode(value);
      if (!bytes || s.sealed_streamers.size() == proto::kMaxAssignedStreamers) {
        return fail("bad or too many streamer lines");
      }
      s.sealed_streamers.push_back(std::move(*bytes));
    } else if (key == "manager") {
      if (!proto::IsValidStreamerUrl(value) || s.manager_urls.size() == kMaxManagerUrls) {
        return fail("bad or too many manager lines");
      }
      s.manager_urls.emplace_back(value);
    } else if (key == "last_command_id") {
      auto v = proto::ParseContentLength(value);
      if (!v) {
        return fail("last_command_id is not a number");
      }
      s.last_command_id = *v;
    } else if (key == "last_good_unix_s") {
      auto v = proto::ParseContentLength(value);
      if (!v) {
        return fail("last_good_unix_s is not a number");
      }
      s.last_good_unix_s = static_cast<int64_t>(*v);
    } else {
      return fail("unknown key " + std::string(key));
    }
  }
  OPENSSL_cleanse(text.data(), text.size());
  // An empty manager_url: activated, but the answer named no usable manager; the agent
  // reactivates with its secret to learn one.
  if (!proto::IsCanonicalAgentId(s.agent_id) ||
      (!s.manager_url.empty() && !proto::IsValidStreamerUrl(s.manager_url)) || !have_secret ||
      (!s.last_streamer.empty() && !proto::IsValidStreamerUrl(s.last_streamer))) {
    *error = "state file " + path + ": missing or invalid agent_id, manager_url or agent_secret";
    return std::nullopt;
  }
  return s;
}

bool SaveAgentState(const std::string& path, const AgentState& s, std::string* error) {
  std::string text(kHeader);
  text.append("\nagent_id=").append(s.agent_id);
  text.append("\nmanager_url=").append(s.manager_url);
  text.append("\nagent_secret=").append(proto::HexEncode(s.secret));
  if (!s.last_streamer.empty()) {
    text.append("\nlast_streamer=").append(s.last_streamer);
  }
  for (const auto& sealed : s.sealed_streamers) {
    text.append("\nstreamer=").append(proto::HexEncode(sealed));
  }
  for (const auto& url : s.manager_urls) {
    text.append("\nmanager=").append(url);
  }
  if (s.last_command_id != 0) {
    text.append("\nlast_command_id=").append(std::to_string(s.last_command_id));
  }
  text.append("\nlast_good_unix_s=").append(std::to_string(s.last_good_unix_s)).append("\n");
  const std::string temp = path + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  bool ok = fd >= 0 && WriteAll(fd, text) && ::fsync(fd) == 0;
  const int saved_errno = errno;
  if (fd >= 0) {
    ::close(fd);
  }
  OPENSSL_cleanse(text.data(), text.size());
  if (!ok || ::rename(temp.c_str(), path.c_str()) != 0 || !SyncDirectory(path)) {
    *error = "cannot write state file " + path + ": " + std::strerror(ok ? errno : saved_errno);
    ::unlink(temp.c_str());
    return false;
  }
  return true;
}

bool WipeAgentState(const std::string& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      // Flash wear levelling may keep old blocks; overwriting is still the best a user-space
      // agent can do before the unlink.
      WriteAll(fd, std::string(static_cast<size_t>(st.st_size), '\0'));
      ::fsync(fd);
    }
    ::close(fd);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    *error = "cannot remove state file " + path + ": " + std::strerror(errno);
    return false;
  }
  SyncDirectory(path);
  return true;
}

}  // namespace camtunnel::agent
