// See config.h.
#include "agent/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proto/encoding.h"

namespace camtunnel::agent {
namespace {

bool IsDnsName(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  size_t label_start = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      std::string_view label = host.substr(label_start, i - label_start);
      if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
        return false;
      }
      label_start = i + 1;
      continue;
    }
    char c = host[i];
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool ParsePort(std::string_view text, uint16_t* port) {
  if (text.empty() || text.size() > 5 || text[0] == '0') {
    return false;
  }
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value == 0 || value > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

enum Option {
  kOptGateway = 1000,
  kOptAgentId,
  kOptKeyRef,
  kOptKeyFile,
  kOptService,
  kOptCaFile,
  kOptPin,
  kOptServerName,
  kOptInsecure,
  kOptLogLevel,
  kOptHelp,
};

}  // namespace

bool ParseGatewayUrl(std::string_view text, GatewayUrl* out, std::string* error) {
  GatewayUrl url;
  url.text = std::string(text);
  std::string_view rest;
  if (text.substr(0, 8) == "https://") {
    url.tls = true;
    url.port = 443;
    rest = text.substr(8);
  } else if (text.substr(0, 7) == "http://") {
    url.tls = false;
    url.port = 80;
    rest = text.substr(7);
  } else {
    *error = "--gateway must start with https:// or http://: " + url.text;
    return false;
  }
  if (!rest.empty() && rest.back() == '/') {
    rest.remove_suffix(1);
  }
  if (rest.find_first_of("/?#@ ") != std::string_view::npos) {
    *error = "--gateway takes only scheme://host[:port] (no user, path or query): " + url.text;
    return false;
  }
  std::string_view host;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      *error = "--gateway has an unterminated [IPv6] host: " + url.text;
      return false;
    }
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        *error = "--gateway has junk after the [IPv6] host: " + url.text;
        return false;
      }
      port = after.substr(1);
      if (port.empty()) {
        *error = "--gateway has an empty port: " + url.text;
        return false;
      }
    }
    in6_addr addr{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &addr) != 1) {
      *error = "--gateway has an invalid IPv6 address: " + url.text;
      return false;
    }
  } else {
    size_t colon = rest.find(':');
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) {
        *error = "--gateway has an empty port: " + url.text;
        return false;
      }
    }
    if (!IsDnsName(host)) {
      *error = "--gateway host is not a valid host name or address: " + url.text;
      return false;
    }
  }
  if (!port.empty() && !ParsePort(port, &url.port)) {
    *error = "--gateway port must be 1..65535: " + url.text;
    return false;
  }
  url.host = std::string(host);
  *out = std::move(url);
  return true;
}

bool LoadKeyFile(const std::string& path, proto::Digest* key, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot open --key-file " + path + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & S_IROTH) != 0) {
    LOG_WARNING("--key-file %s is readable by every user; chmod 600 it", path.c_str());
  }
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n < 0) {
    *error = "cannot read --key-file " + path + ": " + std::strerror(errno);
    return false;
  }
  std::string_view text(buf, static_cast<size_t>(n));
  const char* kSpace = " \t\r\n";
  size_t begin = text.find_first_not_of(kSpace);
  size_t end = text.find_last_not_of(kSpace);
  text = begin == std::string_view::npos ? std::string_view() : text.substr(begin, end - begin + 1);
  bool ok = false;
  if (text.size() == 2 * key->size()) {
    auto bytes = proto::HexDecode(text);
    if (bytes && bytes->size() == key->size()) {
      std::copy(bytes->begin(), bytes->end(), key->begin());
      OPENSSL_cleanse(bytes->data(), bytes->size());
      ok = true;
    }
  }
  OPENSSL_cleanse(buf, sizeof(buf));
  if (!ok) {
    *error = "--key-file " + path + " must hold exactly 64 hexadecimal characters (the agent key)";
  }
  return ok;
}

std::string UsageText() {
  return "usage: camtunnel-agent --gateway https://HOST[:PORT] | http://HOST[:PORT]\n"
         "         --agent-id ID --key-ref KEYID.EXPIRY --key-file PATH\n"
         "         --service NAME=HOST:PORT [--service ...]\n"
         "         [--ca-file PATH] [--pin sha256/BASE64 ...] [--server-name NAME] [--insecure]\n"
         "         [--log-level debug|info|warning|error]\n"
         "  --gateway      gateway URL; https is TLS (default port 443), http is plain (80)\n"
         "  --agent-id     canonical agent id: 1..63 of [a-z0-9-], no leading/trailing '-'\n"
         "  --key-ref      key reference from the manager, e.g. k1.1767225600\n"
         "  --key-file     file holding the 64-hex-character agent key\n"
         "  --service      a local service to expose, e.g. rtsp=127.0.0.1:554 (repeatable)\n"
         "  --ca-file      CA certificates (PEM) that validate the gateway certificate\n"
         "  --pin          SHA-256 of the gateway key's SubjectPublicKeyInfo (repeatable); with\n"
         "                pins and no --ca-file the chain is not validated, the pin is\n"
         "  --server-name  name for SNI and the certificate check (default: the URL host)\n"
         "  --insecure     DEVELOPMENT ONLY: do not verify the gateway certificate\n";
}

ParseOutcome ParseCommandLine(int argc, char** argv, Config* config, std::string* error) {
  static const option kOptions[] = {
      {"gateway", required_argument, nullptr, kOptGateway},
      {"agent-id", required_argument, nullptr, kOptAgentId},
      {"key-ref", required_argument, nullptr, kOptKeyRef},
      {"key-file", required_argument, nullptr, kOptKeyFile},
      {"service", required_argument, nullptr, kOptService},
      {"ca-file", required_argument, nullptr, kOptCaFile},
      {"pin", required_argument, nullptr, kOptPin},
      {"server-name", required_argument, nullptr, kOptServerName},
      {"insecure", no_argument, nullptr, kOptInsecure},
      {"log-level", required_argument, nullptr, kOptLogLevel},
      {"help", no_argument, nullptr, kOptHelp},
      {nullptr, 0, nullptr, 0},
  };
  Config c;
  bool have_gateway = false;
  bool have_key_ref = false;
  optind = 0;  // glibc: full re-initialisation, so tests may parse several command lines
  opterr = 0;  // we word the messages ourselves
  for (;;) {
    // Leading ':' makes a missing value return ':' rather than '?'.
    int opt = getopt_long(argc, argv, ":", kOptions, nullptr);
    if (opt == -1) {
      break;
    }
    std::string_view arg = optarg != nullptr ? optarg : "";
    switch (opt) {
      case kOptGateway:
        if (!ParseGatewayUrl(arg, &c.gateway, error)) {
          return ParseOutcome::kError;
        }
        have_gateway = true;
        break;
      case kOptAgentId:
        if (!proto::IsCanonicalAgentId(arg)) {
          *error =
              "--agent-id must be 1..63 of [a-z0-9-] with no leading or trailing '-' "
              "(lower case; not changed for you): '" +
              std::string(arg) + "'";
          return ParseOutcome::kError;
        }
        c.agent_id = std::string(arg);
        break;
      case kOptKeyRef: {
        auto ref = proto::ParseKeyRef(arg);
        if (!ref) {
          *error =
              "--key-ref must be KEYID.EXPIRY (key id 1..32 of [A-Za-z0-9_-], expiry in "
              "Unix seconds): '" +
              std::string(arg) + "'";
          return ParseOutcome::kError;
        }
        c.key_ref = *ref;
        have_key_ref = true;
        break;
      }
      case kOptKeyFile:
        c.key_file = std::string(arg);
        break;
      case kOptService: {
        auto entry = proto::ParseServiceEntry(arg);
        if (!entry) {
          *error =
              "--service must be NAME=HOST:PORT (name 1..32 of [a-z0-9-], host a name, "
              "IPv4 or [IPv6], port 1..65535): '" +
              std::string(arg) + "'";
          return ParseOutcome::kError;
        }
        for (const auto& existing : c.services) {
          if (existing.name == entry->name) {
            *error = "--service " + entry->name + " is given twice";
            return ParseOutcome::kError;
          }
        }
        c.services.push_back(std::move(*entry));
        break;
      }
      case kOptCaFile:
        c.ca_file = std::string(arg);
        break;
      case kOptPin: {
        auto pin = ParsePin(arg);
        if (!pin) {
          *error = "--pin must be sha256/ followed by the standard base64 of 32 bytes: '" +
                   std::string(arg) + "'";
          return ParseOutcome::kError;
        }
        c.pins.push_back(std::move(*pin));
        break;
      }
      case kOptServerName:
        if (!IsDnsName(arg)) {
          *error = "--server-name must be a host name: '" + std::string(arg) + "'";
          return ParseOutcome::kError;
        }
        c.server_name = std::string(arg);
        break;
      case kOptInsecure:
        c.insecure = true;
        break;
      case kOptLogLevel:
        if (!ParseLogLevel(arg, &c.log_level)) {
          *error = "--log-level must be debug, info, warning or error";
          return ParseOutcome::kError;
        }
        break;
      case kOptHelp:
        return ParseOutcome::kHelp;
      default: {
        const char* bad = (optind > 0 && optind <= argc) ? argv[optind - 1] : "?";
        *error = std::string(opt == ':' ? "missing value for " : "unknown option ") + bad;
        return ParseOutcome::kError;
      }
    }
  }
  if (optind < argc) {
    *error = std::string("unexpected argument: ") + argv[optind];
    return ParseOutcome::kError;
  }
  std::string problem;
  if (!have_gateway) {
    problem = "--gateway is required";
  } else if (c.agent_id.empty()) {
    problem = "--agent-id is required";
  } else if (!have_key_ref) {
    problem = "--key-ref is required";
  } else if (c.key_file.empty()) {
    problem = "--key-file is required";
  } else if (c.services.empty()) {
    problem = "at least one --service NAME=HOST:PORT is required";
  } else if (!c.gateway.tls &&
             (!c.ca_file.empty() || !c.pins.empty() || c.insecure || !c.server_name.empty())) {
    problem = "--ca-file, --pin, --server-name and --insecure apply to an https:// gateway only";
  } else if (c.insecure && (!c.ca_file.empty() || !c.pins.empty())) {
    problem = "--insecure contradicts --ca-file/--pin: choose one";
  }
  if (!problem.empty()) {
    *error = problem;
    return ParseOutcome::kError;
  }
  if (c.server_name.empty()) {
    c.server_name = c.gateway.host;
  }
  *config = std::move(c);
  return ParseOutcome::kOk;
}

}  // namespace camtunnel::agent
