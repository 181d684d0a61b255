// See config.h.
#include "agent/config.h"

#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "proto/encoding.h"
#include "proto/http_head.h"
#include "proto/url.h"

namespace camtunnel::agent {
namespace {

// "host:port" with host a name, IPv4 or [IPv6] and a canonical port: exactly the shape of a
// service entry's value, so proto/'s validator checks it (one definition of a valid host).
std::optional<proto::ServiceEntry> ParseHostPort(std::string_view host_port) {
  return proto::ParseServiceEntry("x=" + std::string(host_port));
}

}  // namespace

bool ParseGatewayUrl(std::string_view text, GatewayUrl* out, std::string* error) {
  const std::optional<proto::Url> parsed = proto::ParseUrl(text);
  if (!parsed || (parsed->scheme != "https" && parsed->scheme != "http")) {
    *error =
        "--gateway must be https://HOST[:PORT] or http://HOST[:PORT] (HOST a name, IPv4 or "
        "[IPv6]; no user, path or query): '" +
        std::string(text) + "'";
    return false;
  }
  const bool tls = parsed->scheme == "https";
  *out =
      GatewayUrl{.tls = tls,
                 .host = std::string(proto::UnbracketedHost(*parsed)),
                 .port = parsed->port != 0 ? parsed->port : static_cast<uint16_t>(tls ? 443 : 80),
                 .text = std::string(text)};
  return true;
}

bool LoadKeyFile(const std::string& path, proto::Digest* key, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot open --key_file " + path + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & S_IROTH) != 0) {
    LOG_WARNING("--key_file %s is readable by every user; chmod 600 it", path.c_str());
  }
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n < 0) {
    *error = "cannot read --key_file " + path + ": " + std::strerror(errno);
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
    *error = "--key_file " + path + " must hold exactly 64 hexadecimal characters (the agent key)";
  }
  return ok;
}

std::string UsageText() {
  return "usage: camtunnel-agent --gateway https://HOST[:PORT] | http://HOST[:PORT]\n"
         "         --agent_id ID --key_ref KEYID.EXPIRY --key_file PATH\n"
         "         --service NAME=HOST:PORT [--service ...]\n"
         "         [--ca_file PATH] [--pin sha256/BASE64 ...] [--server_name NAME] [--insecure]\n"
         "         [--log_level debug|info|warning|error] [--proxy http://HOST:PORT]\n"
         "         [--proxy_file PATH] [--no_kernel_tls]\n"
         "   or: camtunnel-agent --state_file PATH --activation_url https://HOST[:PORT]\n"
         "         --serial SERIAL --factory_secret_file PATH --operator ID\n"
         "         [--reactivate_after_s N] --service ... [--ca_file ...] [--pin ...]\n"
         "flags (--flag VALUE or --flag=VALUE; \"required\" in the mode they belong to):\n"
         "  --gateway URL (required)\n"
         "      gateway URL; https is TLS (default port 443), http is plain (80)\n"
         "  --agent_id ID (required)\n"
         "      canonical agent id: 1..63 of [a-z0-9-], no leading/trailing '-'\n"
         "  --key_ref KEYID.EXPIRY (required)\n"
         "      key reference from the manager, e.g. k1.1767225600\n"
         "  --key_file PATH (required)\n"
         "      file holding the 64-hex-character agent key\n"
         "  --service NAME=HOST:PORT (required, at least one)\n"
         "      a local service to expose, e.g. rtsp=127.0.0.1:554 (repeatable)\n"
         "  --ca_file PATH (default: the system store)\n"
         "      CA certificates (PEM) that validate the gateway certificate\n"
         "  --pin sha256/BASE64 (default: no pins)\n"
         "      SHA-256 of the gateway key's SubjectPublicKeyInfo (repeatable: current and next\n"
         "      key); without --ca_file the pins replace chain validation\n"
         "  --server_name NAME (default: the URL host)\n"
         "      name for SNI and the certificate check\n"
         "  --insecure (default: off)\n"
         "      DEVELOPMENT ONLY: do not verify the gateway certificate\n"
         "  --log_level LEVEL (default: info)\n"
         "      debug, info, warning or error\n"
         "  --proxy URL (default: none, direct connections)\n"
         "      http://[USER:PASS@]HOST:PORT: an HTTP CONNECT proxy for every connection to\n"
         "      gateways, the manager and the activation server (not to local services); Basic\n"
         "      auth when USER:PASS is given\n"
         "  --proxy_file PATH (default: none)\n"
         "      the same URL read from a file (keeps the credentials out of the process list)\n"
         "  --no_kernel_tls (default: off, the kernel encrypts where it can)\n"
         "      keep TLS encryption in OpenSSL even where the kernel has kTLS (by default the\n"
         "      kernel encrypts what the agent sends once the handshake is done, where it can)\n"
         "  --version\n"
         "      print the build time (the certificate-time floor) and exit\n"
         "  --help\n"
         "      print this and exit\n"
         "managed mode:\n"
         "  --state_file PATH (required)\n"
         "      where the activation state is kept (written atomically)\n"
         "  --activation_url URL (required)\n"
         "      the activation server (https only)\n"
         "  --serial SERIAL (required)\n"
         "      this camera's serial (its agent id): 1..63 of [a-z0-9-]\n"
         "  --factory_secret_file PATH (required)\n"
         "      file holding this camera's 64-hex factory secret\n"
         "  --operator ID (required)\n"
         "      operator id or claim token presented at activation\n"
         "  --reactivate_after_s N (default: 600)\n"
         "      ask the activation server again after the manager has been unreachable this long\n"
         "  In managed mode --ca_file/--pin/--insecure apply to the activation server, the\n"
         "  manager and https Streamers alike; the certificate host is each URL's host.\n"
         "The hyphenated spellings of earlier releases (--agent-id, --key-file, ...) are still\n"
         "accepted, with a warning; they will be removed.\n";
}

ParseOutcome ParseCommandLine(int argc, char** argv, Config* config, std::string* error) {
  // Long options only; the values are private codes for the switch below. The hyphenated
  // spellings of earlier releases (every name with a '-') are still accepted, with one warning
  // each, so that existing units and scripts keep working for a release.
  static const option kOptions[] = {
      {"gateway", required_argument, nullptr, 'g'},
      {"agent_id", required_argument, nullptr, 'a'},
      {"key_ref", required_argument, nullptr, 'r'},
      {"key_file", required_argument, nullptr, 'k'},
      {"service", required_argument, nullptr, 's'},
      {"ca_file", required_argument, nullptr, 'c'},
      {"pin", required_argument, nullptr, 'p'},
      {"server_name", required_argument, nullptr, 'n'},
      {"insecure", no_argument, nullptr, 'i'},
      {"log_level", required_argument, nullptr, 'l'},
      {"state_file", required_argument, nullptr, 'S'},
      {"activation_url", required_argument, nullptr, 'A'},
      {"serial", required_argument, nullptr, 'N'},
      {"factory_secret_file", required_argument, nullptr, 'F'},
      {"operator", required_argument, nullptr, 'O'},
      {"reactivate_after_s", required_argument, nullptr, 'R'},
      {"proxy", required_argument, nullptr, 'P'},
      {"proxy_file", required_argument, nullptr, 'X'},
      {"no_kernel_tls", no_argument, nullptr, 'K'},
      {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},
      // Deprecated spellings.
      {"agent-id", required_argument, nullptr, 'a'},
      {"key-ref", required_argument, nullptr, 'r'},
      {"key-file", required_argument, nullptr, 'k'},
      {"ca-file", required_argument, nullptr, 'c'},
      {"server-name", required_argument, nullptr, 'n'},
      {"log-level", required_argument, nullptr, 'l'},
      {"state-file", required_argument, nullptr, 'S'},
      {"activation-url", required_argument, nullptr, 'A'},
      {"factory-secret-file", required_argument, nullptr, 'F'},
      {"reactivate-after-s", required_argument, nullptr, 'R'},
      {"proxy-file", required_argument, nullptr, 'X'},
      {"no-kernel-tls", no_argument, nullptr, 'K'},
      {nullptr, 0, nullptr, 0},
  };
  auto fail = [error](std::string message) {
    *error = std::move(message);
    return ParseOutcome::kError;
  };
  Config c;
  bool have_gateway = false;
  bool have_key_ref = false;
  optind = 0;  // glibc: full re-initialisation, so tests may parse several command lines
  opterr = 0;  // we word the messages ourselves
  int opt;
  int index = -1;
  // The leading ':' makes a missing value return ':' rather than '?'.
  while ((opt = getopt_long(argc, argv, ":", kOptions, &index)) != -1) {
    const std::string arg = optarg != nullptr ? optarg : "";
    if (index >= 0 && std::strchr(kOptions[index].name, '-') != nullptr) {
      std::string current = kOptions[index].name;
      std::replace(current.begin(), current.end(), '-', '_');
      std::string warning =
          std::string("--") + kOptions[index].name + " is deprecated, use --" + current;
      if (std::find(c.deprecation_warnings.begin(), c.deprecation_warnings.end(), warning) ==
          c.deprecation_warnings.end()) {
        c.deprecation_warnings.push_back(std::move(warning));
      }
    }
    index = -1;
    switch (opt) {
      case 'g':
        if (!ParseGatewayUrl(arg, &c.gateway, error)) {
          return ParseOutcome::kError;
        }
        have_gateway = true;
        break;
      case 'a':
        if (!proto::IsCanonicalAgentId(arg)) {
          return fail(
              "--agent_id must be 1..63 of [a-z0-9-] with no leading or trailing '-' "
              "(lower case; it is not changed for you): '" +
              arg + "'");
        }
        c.agent_id = arg;
        break;
      case 'r': {
        auto ref = proto::ParseKeyRef(arg);
        if (!ref) {
          return fail(
              "--key_ref must be KEYID.EXPIRY (key id 1..32 of [A-Za-z0-9_-], expiry in "
              "Unix seconds): '" +
              arg + "'");
        }
        c.key_ref = *ref;
        have_key_ref = true;
        break;
      }
      case 'k':
        c.key_file = arg;
        break;
      case 's': {
        auto entry = proto::ParseServiceEntry(arg);
        if (!entry) {
          return fail(
              "--service must be NAME=HOST:PORT (name 1..32 of [a-z0-9-], host a name, "
              "IPv4 or [IPv6], port 1..65535): '" +
              arg + "'");
        }
        for (const auto& existing : c.services) {
          if (existing.name == entry->name) {
            return fail("--service " + entry->name + " is given twice");
          }
        }
        c.services.push_back(std::move(*entry));
        break;
      }
      case 'c':
        c.ca_file = arg;
        break;
      case 'p': {
        auto pin = ParsePin(arg);
        if (!pin) {
          return fail("--pin must be sha256/ and the standard base64 of 32 bytes: '" + arg + "'");
        }
        c.pins.push_back(std::move(*pin));
        break;
      }
      case 'n': {
        auto host = ParseHostPort(arg + ":443");
        if (!host || host->host.front() == '[') {
          return fail("--server_name must be a host name or IPv4 address: '" + arg + "'");
        }
        c.server_name = arg;
        break;
      }
      case 'i':
        c.insecure = true;
        break;
      case 'K':
        c.kernel_tls = false;
        break;
      case 'l':
        if (!ParseLogLevel(arg, &c.log_level)) {
          return fail("--log_level must be debug, info, warning or error");
        }
        break;
      case 'S':
        c.managed = true;
        c.manage.state_file = arg;
        break;
      case 'A':
        if (!ParseGatewayUrl(arg, &c.manage.activation_url, error)) {
          return fail("--activation_url must be https://HOST[:PORT]: '" + arg + "'");
        }
        if (!c.manage.activation_url.tls) {
          return fail("--activation_url must be https (the secret travels in the answer)");
        }
        break;
      case 'N':
        if (!proto::IsCanonicalAgentId(arg)) {
          return fail("--serial must be 1..63 of [a-z0-9-] (it becomes the agent id): '" + arg +
                      "'");
        }
        c.manage.serial = arg;
        break;
      case 'F':
        c.manage.factory_secret_file = arg;
        break;
      case 'O': {
        const bool ok = !arg.empty() && arg.size() <= 64 &&
                        arg.find_first_not_of(
                            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            "0123456789-_.") == std::string::npos;
        if (!ok) {
          return fail("--operator must be 1..64 of [A-Za-z0-9._-]");
        }
        c.manage.operator_id = arg;
        break;
      }
      case 'R': {
        auto v = proto::ParseContentLength(arg);
        if (!v || *v == 0 || *v > 86400 * 365) {
          return fail("--reactivate_after_s must be 1..31536000");
        }
        c.manage.reactivate_after_ms = static_cast<int64_t>(*v) * 1000;
        break;
      }
      case 'P':
      case 'X': {
        if (c.proxy) {
          return fail("give --proxy or --proxy_file, once");
        }
        std::string url = arg;
        if (opt == 'X') {
          // The URL may carry credentials: a file (mode 0600) keeps them out of /proc/PID/cmdline.
          std::ifstream in(arg);
          if (!in || !std::getline(in, url)) {
            return fail("--proxy_file " + std::string(arg) + ": cannot read it");
          }
          while (!url.empty() && (url.back() == '\r' || url.back() == ' ')) {
            url.pop_back();
          }
        }
        auto proxy = std::make_shared<ProxyConfig>();
        const bool ok = ParseProxyUrl(url, proxy.get(), error);
        OPENSSL_cleanse(url.data(), url.size());
        if (!ok) {
          return ParseOutcome::kError;
        }
        c.proxy = std::move(proxy);
        break;
      }
      case 'V':
        return ParseOutcome::kVersion;
      case 'h':
        return ParseOutcome::kHelp;
      default:
        return fail(std::string(opt == ':' ? "missing value for " : "unknown option ") +
                    (optind > 0 && optind <= argc ? argv[optind - 1] : "?"));
    }
  }
  if (optind < argc) {
    return fail(std::string("unexpected argument: ") + argv[optind]);
  }
  if (c.managed) {
    if (have_gateway || !c.agent_id.empty() || have_key_ref || !c.key_file.empty()) {
      return fail(
          "--state_file (managed mode) excludes --gateway, --agent_id, --key_ref and "
          "--key_file: the manager assigns Streamers and keys");
    }
    if (c.manage.activation_url.host.empty() || c.manage.serial.empty() ||
        c.manage.factory_secret_file.empty() || c.manage.operator_id.empty()) {
      return fail(
          "managed mode needs --activation_url, --serial, --factory_secret_file and --operator");
    }
    if (c.services.empty()) {
      return fail("at least one --service NAME=HOST:PORT is required");
    }
    if (c.insecure && (!c.ca_file.empty() || !c.pins.empty())) {
      return fail("--insecure contradicts --ca_file/--pin: choose one");
    }
    if (!c.server_name.empty()) {
      return fail("--server_name does not apply in managed mode (each URL's host is checked)");
    }
    *config = std::move(c);
    return ParseOutcome::kOk;
  }
  if (!have_gateway || c.agent_id.empty() || !have_key_ref || c.key_file.empty()) {
    return fail(std::string(!have_gateway        ? "--gateway"
                            : c.agent_id.empty() ? "--agent_id"
                            : !have_key_ref      ? "--key_ref"
                                                 : "--key_file") +
                " is required");
  }
  if (c.services.empty()) {
    return fail("at least one --service NAME=HOST:PORT is required");
  }
  if (!c.gateway.tls &&
      (!c.ca_file.empty() || !c.pins.empty() || c.insecure || !c.server_name.empty())) {
    return fail("--ca_file, --pin, --server_name and --insecure apply to an https:// gateway only");
  }
  if (c.insecure && (!c.ca_file.empty() || !c.pins.empty())) {
    return fail("--insecure contradicts --ca_file/--pin: choose one");
  }
  if (c.server_name.empty()) {
    c.server_name = c.gateway.host;
  }
  *config = std::move(c);
  return ParseOutcome::kOk;
}

}  // namespace camtunnel::agent
