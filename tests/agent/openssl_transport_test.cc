// The OpenSSL transport against an in-process OpenSSL server on loopback: trust modes (pins,
// CA file, host names, insecure), the exporter, TLS half-close in both directions, and kernel
// TLS where the kernel has it (OpenSSL otherwise).
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "agent/cert_time.h"
#include "agent/pin.h"
#include "agent/tls_transport.h"
#include "proto/encoding.h"
#include "tests/agent/tls_test_util.h"

namespace camtunnel::agent {
namespace {

using test_util::MakeSelfSigned;
using test_util::TcpPair;
using test_util::TestCert;

class OpenSslTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    MakeSelfSigned("gateway.test", &cert_);
    server_ctx_ = SSL_CTX_new(TLS_server_method());
    ASSERT_EQ(SSL_CTX_use_certificate(server_ctx_, cert_.cert), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(server_ctx_, cert_.key), 1);
    pin_ = SpkiSha256(cert_.cert);
  }
  void TearDown() override {
    if (server_fd_ >= 0) {
      close(server_fd_);  // SSL_set_fd does not give the SSL ownership of the socket
    }
    SSL_free(server_);
    SSL_CTX_free(server_ctx_);
    if (!ca_path_.empty()) {
      std::remove(ca_path_.c_str());
    }
  }

  // Replaces the server's certificate by one valid from now+`not_before_s` to now+`not_after_s`.
  void UseCertificateValid(long not_before_s, long not_after_s) {
    X509_free(cert_.cert);
    EVP_PKEY_free(cert_.key);
    MakeSelfSigned("gateway.test", &cert_, not_before_s, not_after_s);
    ASSERT_EQ(SSL_CTX_use_certificate(server_ctx_, cert_.cert), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(server_ctx_, cert_.key), 1);
    pin_ = SpkiSha256(cert_.cert);
  }

  std::string WriteCaFile() {
    char tmpl[] = "/tmp/camtunnel-agent-ca-XXXXXX";
    int fd = mkstemp(tmpl);
    FILE* f = fdopen(fd, "w");
    PEM_write_X509(f, cert_.cert);
    fclose(f);
    ca_path_ = tmpl;
    return ca_path_;
  }

  // Connects a transport from `trust` to the in-process server and runs both handshakes.
  // Returns the client's final status (kOk, or kError with error_text()).
  // `time_floor`: the last known good time given to the factory (0: none; the build time
  // still applies).
  IoStatus Connect(const TlsTrust& trust, int64_t time_floor = 0, bool kernel_tls = false) {
    std::string error;
    factory_ = MakeOpenSslTransportFactory(trust, &error, kernel_tls);
    EXPECT_NE(factory_, nullptr) << error;
    if (!factory_) {
      return IoStatus::kError;
    }
    factory_->RaiseTimeFloor(time_floor);
    auto [client_fd, server_fd] = TcpPair();
    server_fd_ = server_fd;
    client_ = factory_->Wrap(client_fd);
    server_ = SSL_new(server_ctx_);
    SSL_set_fd(server_, server_fd);
    SSL_set_accept_state(server_);
    IoStatus client_status = IoStatus::kWantWrite;
    bool server_done = false;
    for (int i = 0; i < 1000; ++i) {
      if (client_status != IoStatus::kOk) {
        client_status = client_->Handshake();
        if (client_status == IoStatus::kError || client_status == IoStatus::kEof) {
          return client_status;
        }
      }
      if (!server_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(server_);
        server_done = r == 1;
        if (r <= 0) {
          int err = SSL_get_error(server_, r);
          if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            server_failed_ = true;
          }
        }
      }
      if (client_status == IoStatus::kOk && (server_done || server_failed_)) {
        return IoStatus::kOk;
      }
      pollfd fds[2] = {{client_fd, POLLIN, 0}, {server_fd, POLLIN, 0}};
      poll(fds, 2, 10);
    }
    ADD_FAILURE() << "handshake did not finish";
    return IoStatus::kError;
  }

  // Reads from the client transport until `want` bytes arrived or a non-data status.
  IoStatus ClientRead(std::string* out, size_t want) {
    for (int i = 0; i < 500; ++i) {
      uint8_t buf[256];
      size_t n = 0;
      IoStatus st = client_->Read(buf, &n);
      if (st == IoStatus::kOk) {
        out->append(reinterpret_cast<char*>(buf), n);
        if (out->size() >= want) {
          return st;
        }
        continue;
      }
      if (st != IoStatus::kWantRead) {
        return st;
      }
      pollfd pfd{client_->fd(), POLLIN, 0};
      poll(&pfd, 1, 10);
    }
    return IoStatus::kWantRead;
  }

  // Server-side SSL_read until data, close_notify (returns SSL_ERROR_ZERO_RETURN) or error.
  int ServerRead(std::string* out) {
    for (int i = 0; i < 500; ++i) {
      char buf[256];
      ERR_clear_error();
      int r = SSL_read(server_, buf, sizeof(buf));
      if (r > 0) {
        out->append(buf, static_cast<size_t>(r));
        return SSL_ERROR_NONE;
      }
      int err = SSL_get_error(server_, r);
      if (err != SSL_ERROR_WANT_READ) {
        return err;
      }
      pollfd pfd{server_fd_, POLLIN, 0};
      poll(&pfd, 1, 10);
    }
    return SSL_ERROR_WANT_READ;
  }

  TestCert cert_;
  SSL_CTX* server_ctx_ = nullptr;
  SSL* server_ = nullptr;
  int server_fd_ = -1;
  bool server_failed_ = false;
  std::vector<uint8_t> pin_;
  std::string ca_path_;
  std::unique_ptr<TransportFactory> factory_;
  std::unique_ptr<Transport> client_;
};

TEST_F(OpenSslTransportTest, PinnedKeyWithMatchingNameConnectsWithoutCa) {
  TlsTrust trust{.pins = {pin_}, .server_name = "gateway.test"};
  ASSERT_EQ(Connect(trust), IoStatus::kOk) << client_->error_text();
  EXPECT_EQ(client_->kind(), proto::Transport::kTls);
  // Both ends derive the same exporter: the proofs can bind to this connection.
  std::vector<uint8_t> exporter = client_->Exporter();
  ASSERT_EQ(exporter.size(), 32u);
  std::vector<uint8_t> server_exporter(32);
  ASSERT_EQ(SSL_export_keying_material(server_, server_exporter.data(), 32, "EXPORTER-camtunnel",
                                       18, nullptr, 0, 0),
            1);
  EXPECT_EQ(exporter, server_exporter);
  EXPECT_EQ(SSL_version(server_), TLS1_3_VERSION);
}

TEST_F(OpenSslTransportTest, SecondPinOfTheSetIsEnough) {
  TlsTrust trust{.pins = {std::vector<uint8_t>(32, 0x5a), pin_}, .server_name = "gateway.test"};
  EXPECT_EQ(Connect(trust), IoStatus::kOk) << client_->error_text();
}

TEST_F(OpenSslTransportTest, KeyMatchingNoPinIsRejected) {
  TlsTrust trust{.pins = {std::vector<uint8_t>(32, 0x5a)}, .server_name = "gateway.test"};
  ASSERT_EQ(Connect(trust), IoStatus::kError);
  EXPECT_NE(client_->error_text().find("matches no --pin"), std::string::npos)
      << client_->error_text();
  // The message tells the operator which pin the gateway presents.
  EXPECT_NE(client_->error_text().find(FormatPin(pin_)), std::string::npos);
}

TEST_F(OpenSslTransportTest, PinnedKeyWithWrongHostNameIsRejected) {
  TlsTrust trust{.pins = {pin_}, .server_name = "other.test"};
  ASSERT_EQ(Connect(trust), IoStatus::kError);
  EXPECT_NE(client_->error_text().find("host"), std::string::npos) << client_->error_text();
}

TEST_F(OpenSslTransportTest, CaFileValidatesChainAndHostName) {
  TlsTrust trust{.ca_file = WriteCaFile(), .server_name = "gateway.test"};
  EXPECT_EQ(Connect(trust), IoStatus::kOk) << client_->error_text();
}

TEST_F(OpenSslTransportTest, CaFileWithWrongHostNameIsRejected) {
  TlsTrust trust{.ca_file = WriteCaFile(), .server_name = "other.test"};
  ASSERT_EQ(Connect(trust), IoStatus::kError);
  EXPECT_NE(client_->error_text().find("hostname mismatch"), std::string::npos)
      << client_->error_text();
}

TEST_F(OpenSslTransportTest, UntrustedSelfSignedIsRejectedWithoutPinsOrCa) {
  TlsTrust trust{.server_name = "gateway.test"};  // system store only
  ASSERT_EQ(Connect(trust), IoStatus::kError);
  EXPECT_NE(client_->error_text().find("self-signed"), std::string::npos) << client_->error_text();
}

// Certificate time (cert_time.h): the clock of this test machine is right, so a last known good
// time ahead of it stands in for "the clock is behind what we know" (a camera in 1970).
constexpr long kDay = 86400;

TEST_F(OpenSslTransportTest, ExpiredCertificateIsRefused) {
  UseCertificateValid(-10 * kDay, -kDay);
  TlsTrust trust{.ca_file = WriteCaFile(), .server_name = "gateway.test"};
  ASSERT_EQ(Connect(trust), IoStatus::kError);
  EXPECT_NE(client_->error_text().find("certificate has expired"), std::string::npos)
      << client_->error_text();
}

TEST_F(OpenSslTransportTest, CertificateExpiredAtTheLastGoodTimeIsRefusedThoughTheClockIsBehind) {
  // Valid by the clock, expired by what a verified peer told us: the larger time wins.
  UseCertificateValid(-kDay, kDay);
  TlsTrust trust{.ca_file = WriteCaFile(), .server_name = "gateway.test"};
  ASSERT_EQ(Connect(trust, std::time(nullptr) + 2 * kDay), IoStatus::kError);
  EXPECT_NE(client_->error_text().find("certificate has expired"), std::string::npos)
      << client_->error_text();
}

TEST_F(OpenSslTransportTest, NotYetValidIsOverlookedWhileTheClockIsBehindTheFloor) {
  // The floor is only a lower bound of the true time: a certificate issued after it may be
  // valid now (a camera unboxed long after its build meets only such certificates).
  UseCertificateValid(3 * kDay, 10 * kDay);
  TlsTrust trust{.ca_file = WriteCaFile(), .server_name = "gateway.test"};
  EXPECT_EQ(Connect(trust, std::time(nullptr) + kDay), IoStatus::kOk) << client_->error_text();
}

TEST_F(OpenSslTransportTest, NotYetValidIsOverlookedWithPinsAlsoWhileTheClockIsBehind) {
  UseCertificateValid(3 * kDay, 10 * kDay);
  TlsTrust trust{.pins = {pin_}, .server_name = "gateway.test"};
  EXPECT_EQ(Connect(trust, std::time(nullptr) + kDay), IoStatus::kOk) << client_->error_text();
}

TEST_F(OpenSslTransportTest, NotYetValidIsRefusedWhenTheClockIsAheadOfTheFloor) {
  // A clock ahead of every floor is believed: the certificate is not valid yet.
  UseCertificateValid(3 * kDay, 10 * kDay);
  TlsTrust trust{.ca_file = WriteCaFile(), .server_name = "gateway.test"};
  ASSERT_EQ(Connect(trust), IoStatus::kError);
  EXPECT_NE(client_->error_text().find("not yet valid"), std::string::npos)
      << client_->error_text();
}

TEST_F(OpenSslTransportTest, InsecureAcceptsAnyCertificate) {
  TlsTrust trust{.server_name = "other.test", .insecure = true};
  EXPECT_EQ(Connect(trust), IoStatus::kOk) << client_->error_text();
}

TEST_F(OpenSslTransportTest, HalfCloseKeepsTheOtherDirectionOpen) {
  TlsTrust trust{.pins = {pin_}, .server_name = "gateway.test"};
  ASSERT_EQ(Connect(trust), IoStatus::kOk) << client_->error_text();
  size_t n = 0;
  const std::string ping = "ping";
  ASSERT_EQ(client_->Write(proto::AsBytes(ping), &n), IoStatus::kOk);
  EXPECT_EQ(n, 4u);
  // Client ends its direction: close_notify + FIN.
  ASSERT_EQ(client_->ShutdownWrite(), IoStatus::kOk);
  std::string got;
  EXPECT_EQ(ServerRead(&got), SSL_ERROR_NONE);
  EXPECT_EQ(got, "ping");
  EXPECT_EQ(ServerRead(&got), SSL_ERROR_ZERO_RETURN);
  // The server may still send, and the client still reads after its own close_notify.
  ASSERT_EQ(SSL_write(server_, "pong", 4), 4);
  std::string reply;
  EXPECT_EQ(ClientRead(&reply, 4), IoStatus::kOk);
  EXPECT_EQ(reply, "pong");
  // Then the server ends too: the client sees a clean end of stream.
  SSL_shutdown(server_);
  EXPECT_EQ(ClientRead(&reply, 5), IoStatus::kEof);
}

TEST_F(OpenSslTransportTest, FinWithoutCloseNotifyIsAnErrorNotAnEnd) {
  TlsTrust trust{.pins = {pin_}, .server_name = "gateway.test"};
  ASSERT_EQ(Connect(trust), IoStatus::kOk) << client_->error_text();
  ::shutdown(server_fd_, SHUT_WR);  // truncation: no close_notify
  std::string got;
  EXPECT_EQ(ClientRead(&got, 1), IoStatus::kError);
}

// Whether this kernel takes the "tls" TCP upper-layer protocol (kTLS), asked the way OpenSSL
// will: on a connected socket of a throw-away pair.
bool KernelHasTls() {
  auto [a, b] = TcpPair();
  const bool has = setsockopt(a, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
  close(a);
  close(b);
  return has;
}

class KernelTlsTest : public OpenSslTransportTest {
 protected:
  // Bytes both ways and a half-close from the client (its close_notify is, with kTLS, a
  // control record the kernel writes), as HalfCloseKeepsTheOtherDirectionOpen.
  void ExchangeAndHalfClose() {
    size_t n = 0;
    const std::string ping(3000, 'p');  // more than one packet's worth of records
    ASSERT_EQ(client_->Write(proto::AsBytes(ping), &n), IoStatus::kOk);
    EXPECT_EQ(n, ping.size());
    ASSERT_EQ(client_->ShutdownWrite(), IoStatus::kOk);
    std::string got;
    while (got.size() < ping.size() && ServerRead(&got) == SSL_ERROR_NONE) {
    }
    EXPECT_EQ(got, ping);
    EXPECT_EQ(ServerRead(&got), SSL_ERROR_ZERO_RETURN);
    ASSERT_EQ(SSL_write(server_, "pong", 4), 4);
    std::string reply;
    EXPECT_EQ(ClientRead(&reply, 4), IoStatus::kOk);
    EXPECT_EQ(reply, "pong");
  }
};

// Where the kernel has kTLS the agent hands it the sending keys after the handshake (the
// camera's video is what an agent sends); where it has not (this build machine: no CONFIG_TLS),
// OpenSSL encrypts as before. Either way every byte arrives and the half-close works.
TEST_F(KernelTlsTest, TheKernelEncryptsWhereItCanAndOpenSslOtherwise) {
  TlsTrust trust{.pins = {pin_}, .server_name = "gateway.test"};
  ASSERT_EQ(Connect(trust, 0, true), IoStatus::kOk) << client_->error_text();
  EXPECT_EQ(client_->kernel_tls_send(), KernelHasTls());
  ExchangeAndHalfClose();
}

TEST_F(KernelTlsTest, NoKernelTlsKeepsEncryptionInOpenSsl) {
  TlsTrust trust{.pins = {pin_}, .server_name = "gateway.test"};
  ASSERT_EQ(Connect(trust, 0, false), IoStatus::kOk) << client_->error_text();
  EXPECT_FALSE(client_->kernel_tls_send());
  ExchangeAndHalfClose();
}

}  // namespace
}  // namespace camtunnel::agent
