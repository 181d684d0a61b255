// The ring BIO's side of OpenSSL's kernel-TLS sending protocol (kernel_tls_send.h), against
// OpenSSL itself: the gateway's server context with SSL_OP_ENABLE_KTLS over the ring BIO, a
// real OpenSSL client, and between them a user-space stand-in for what a kernel with the
// sending keys does to what the stream sends (this machine has no CONFIG_TLS). If the key
// hand-over, the switch point or a control record's bounds were wrong, the client could not
// read a byte.
#include "runtime/kernel_tls_send.h"

#include <gtest/gtest.h>
#include <linux/tls.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "runtime/byte_queue.h"
#include "runtime/tls_bio.h"
#include "runtime/tls_context.h"
#include "tests/runtime/test_tls.h"

namespace camtunnel::runtime {
namespace {

// A kernel that took TLS_TX (Documentation/networking/tls.rst): plain sends become TLS 1.3
// application-data records of at most 16 KiB, a send marked TLS_SET_RECORD_TYPE one record of
// that type; each sealed with AES-128-GCM, nonce = salt|iv XOR the record sequence, the
// record header as additional data, the content type after the data.
class KernelStandIn {
 public:
  explicit KernelStandIn(const std::vector<uint8_t>& info) {
    tls12_crypto_info_aes_gcm_128 c;
    EXPECT_EQ(info.size(), sizeof(c));
    std::memcpy(&c, info.data(), sizeof(c));
    EXPECT_EQ(c.info.version, TLS_1_3_VERSION);
    EXPECT_EQ(c.info.cipher_type, TLS_CIPHER_AES_GCM_128);
    std::memcpy(key_, c.key, sizeof(key_));
    std::memcpy(nonce_, c.salt, 4);
    std::memcpy(nonce_ + 4, c.iv, 8);
    for (uint8_t b : c.rec_seq) {
      seq_ = seq_ << 8 | b;
    }
  }

  std::string Send(std::string_view data, uint8_t type) {
    std::string out;
    do {
      const std::string_view part = data.substr(0, 16384);
      data.remove_prefix(part.size());
      out += Seal(part, type);
    } while (!data.empty());
    return out;
  }

 private:
  std::string Seal(std::string_view data, uint8_t type) {
    std::string inner(data);
    inner.push_back(static_cast<char>(type));
    const size_t len = inner.size() + 16;
    const uint8_t header[5] = {23, 3, 3, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
    uint8_t nonce[12];
    std::memcpy(nonce, nonce_, sizeof(nonce));
    for (int i = 0; i < 8; ++i) {
      nonce[11 - i] ^= static_cast<uint8_t>(seq_ >> (8 * i));
    }
    ++seq_;
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    std::string out(reinterpret_cast<const char*>(header), sizeof(header));
    out.resize(sizeof(header) + len);
    auto* sealed = reinterpret_cast<uint8_t*>(out.data() + sizeof(header));
    int n = 0;
    EXPECT_EQ(EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), nullptr, key_, nonce), 1);
    EXPECT_EQ(EVP_EncryptUpdate(ctx, nullptr, &n, header, sizeof(header)), 1);
    EXPECT_EQ(EVP_EncryptUpdate(ctx, sealed, &n, reinterpret_cast<const uint8_t*>(inner.data()),
                                static_cast<int>(inner.size())),
              1);
    EXPECT_EQ(EVP_EncryptFinal_ex(ctx, sealed + n, &n), 1);
    EXPECT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, sealed + inner.size()), 1);
    EVP_CIPHER_CTX_free(ctx);
    return out;
  }

  uint8_t key_[16];
  uint8_t nonce_[12];
  uint64_t seq_ = 0;
};

class KernelTlsSendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ctx = CreateServerContext({cert_.cert_file, cert_.key_file});
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    server_ctx_ = std::move(*ctx);
    SSL_CTX_set_options(server_ctx_.get(), SSL_OP_ENABLE_KTLS);
    server_ = SSL_new(server_ctx_.get());
    state_.output = &queue_;
    BIO* bio = NewTlsBio(&state_);
    SSL_set_bio(server_, bio, bio);
    SSL_set_accept_state(server_);
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(client_ctx_, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(client_ctx_, "TLS_AES_128_GCM_SHA256");
    client_ = SSL_new(client_ctx_);
    client_in_ = BIO_new(BIO_s_mem());
    client_out_ = BIO_new(BIO_s_mem());
    SSL_set_bio(client_, client_in_, client_out_);
    SSL_set_connect_state(client_);
  }

  void TearDown() override {
    SSL_free(server_);
    SSL_free(client_);
    SSL_CTX_free(client_ctx_);
  }

  // Moves what the client wrote to the server's input, and what the server queued to the
  // client as the socket would send it: raw up to the switch point, then through the kernel.
  void Exchange() {
    char buf[65536];
    std::string to_server;
    for (int n; (n = BIO_read(client_out_, buf, sizeof(buf))) > 0;) {
      to_server.append(buf, static_cast<size_t>(n));
    }
    state_.input = {reinterpret_cast<const uint8_t*>(to_server.data()), to_server.size()};
    ERR_clear_error();
    if (!SSL_is_init_finished(server_)) {
      SSL_do_handshake(server_);
    }
    while (!state_.input.empty()) {
      size_t n = 0;
      if (SSL_read_ex(server_, buf, sizeof(buf), &n) != 1) {
        break;
      }
      server_got_.append(buf, n);
    }
    state_.input = {};
    std::string wire;
    while (!queue_.empty()) {
      const auto front = queue_.Front();
      sent_.append(reinterpret_cast<const char*>(front.data()), front.size());
      queue_.Consume(front.size());
    }
    while (kernel_.sent < sent_.size() && !kernel_.at_key_update()) {
      wire += SendNext();
    }
    BIO_write(client_in_, wire.data(), static_cast<int>(wire.size()));
  }

  // The stream's side, with the stream's own rules (KernelTlsSend::NextSend and the rest):
  // the next send, cut at the switch point and at control records' bounds.
  std::string SendNext() {
    if (kernel_.keys_due()) {
      stand_in_.emplace(kernel_.crypto_info);  // setsockopt(SOL_TLS, TLS_TX) at this byte
      kernel_.keys_given = true;
    }
    uint8_t type = 0;
    const size_t n = kernel_.NextSend(sent_.size() - kernel_.sent, &type);
    EXPECT_GT(n, 0u);
    const std::string_view bytes = std::string_view(sent_).substr(kernel_.sent, n);
    kernel_.Sent(n);
    if (!kernel_.keys_given) {
      return std::string(bytes);  // records OpenSSL sealed itself
    }
    control_records_ += type != 0 ? 1 : 0;
    return stand_in_->Send(bytes, type != 0 ? type : 23);
  }

  void Handshake() {
    for (int i = 0; i < 10 && !(SSL_is_init_finished(client_) && SSL_is_init_finished(server_));
         ++i) {
      SSL_do_handshake(client_);
      Exchange();
    }
    ASSERT_TRUE(SSL_is_init_finished(client_));
    ASSERT_TRUE(SSL_is_init_finished(server_));
  }

  std::string ClientRead() {
    std::string got;
    char buf[65536];
    size_t n = 0;
    while (SSL_read_ex(client_, buf, sizeof(buf), &n) == 1) {
      got.append(buf, n);
    }
    return got;
  }

  testing::TestCert cert_;
  SslCtxPtr server_ctx_;
  SSL_CTX* client_ctx_ = nullptr;
  SSL* server_ = nullptr;
  SSL* client_ = nullptr;
  BIO* client_in_ = nullptr;
  BIO* client_out_ = nullptr;
  ByteQueue queue_;
  KernelTlsSend kernel_;
  TlsBioState state_;
  std::string sent_;  // every byte the server queued
  std::string server_got_;
  std::optional<KernelStandIn> stand_in_;
  int control_records_ = 0;
};

TEST_F(KernelTlsSendTest, WithTheKeysTheKernelSealsWhatOpenSslWritesAndThePeerReadsIt) {
  state_.kernel_send = &kernel_;
  Handshake();
  ASSERT_TRUE(kernel_.switch_at.has_value()) << "OpenSSL did not offer the sending keys";
  EXPECT_TRUE(BIO_get_ktls_send(SSL_get_wbio(server_)));
  // The session tickets went as handshake records of their own (the client can resume).
  std::string big(40000, 'v');
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>('a' + i % 26);
  }
  size_t n = 0;
  for (size_t at = 0; at < big.size(); at += n) {  // a record per call (partial writes)
    ASSERT_EQ(SSL_write_ex(server_, big.data() + at, big.size() - at, &n), 1);
  }
  Exchange();
  const std::string got = ClientRead();
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big) << "the bytes differ";
  EXPECT_GE(control_records_, 1);
  SSL_SESSION* session = SSL_get1_session(client_);
  EXPECT_EQ(SSL_SESSION_is_resumable(session), 1);
  SSL_SESSION_free(session);
  // The client's bytes still arrive through OpenSSL (it never offers the receiving keys).
  ASSERT_EQ(SSL_write_ex(client_, "up", 2, &n), 1);
  Exchange();
  EXPECT_EQ(server_got_, "up");
  // close_notify is an alert record of its own.
  const int before = control_records_;
  SSL_shutdown(server_);
  Exchange();
  EXPECT_EQ(control_records_, before + 1);
  char buf[16];
  EXPECT_EQ(SSL_read_ex(client_, buf, sizeof(buf), &n), 0);
  EXPECT_EQ(SSL_get_error(client_, 0), SSL_ERROR_ZERO_RETURN);
  EXPECT_FALSE(kernel_.key_update_at.has_value());
}

TEST_F(KernelTlsSendTest, AKeyUpdateAfterTheSwitchIsFlaggedForTheStreamToEnd) {
  state_.kernel_send = &kernel_;
  Handshake();
  ASSERT_TRUE(kernel_.switch_at.has_value());
  Exchange();
  ClientRead();
  ASSERT_EQ(SSL_key_update(client_, SSL_KEY_UPDATE_REQUESTED), 1);
  size_t n = 0;
  ASSERT_EQ(SSL_write_ex(client_, "k", 1, &n), 1);
  Exchange();
  EXPECT_EQ(server_got_, "k");
  // OpenSSL answers with its own KeyUpdate on its next write, and gives the kernel no new
  // keys (OpenSSL 3.0): what follows would be sealed under the old ones.
  ASSERT_EQ(SSL_write_ex(server_, "after", 5, &n), 1);
  Exchange();
  ASSERT_TRUE(kernel_.key_update_at.has_value());
  EXPECT_GT(*kernel_.key_update_at, *kernel_.switch_at);
  // The stream sends nothing from there on: it ends the connection.
  EXPECT_TRUE(kernel_.at_key_update());
  EXPECT_EQ(kernel_.sent, *kernel_.key_update_at);
}

TEST_F(KernelTlsSendTest, WithoutKernelSendingTheBioRefusesTheKeys) {
  // (The stand-in stream still runs: with no switch point everything goes out as queued.)
  Handshake();  // state_.kernel_send is null: OpenSSL seals every record itself
  EXPECT_FALSE(kernel_.switch_at.has_value());
  EXPECT_FALSE(BIO_get_ktls_send(SSL_get_wbio(server_)));
  size_t n = 0;
  ASSERT_EQ(SSL_write_ex(server_, "sealed by OpenSSL", 17, &n), 1);
  Exchange();
  EXPECT_EQ(ClientRead(), "sealed by OpenSSL");
}

TEST(KernelTlsSendUnitTest, TakesKeysOnceForKnownCiphersAndNotesControlRecords) {
  KernelTlsSend k;
  tls12_crypto_info_aes_gcm_128 info{};
  info.info.version = TLS_1_3_VERSION;
  info.info.cipher_type = 9999;
  const auto* raw = reinterpret_cast<const uint8_t*>(&info);
  EXPECT_FALSE(k.TakeKeys({raw, sizeof(info)}));  // unknown cipher
  info.info.cipher_type = TLS_CIPHER_AES_GCM_128;
  EXPECT_FALSE(k.TakeKeys({raw, 4}));  // short
  const uint8_t flight[100] = {};
  k.Wrote(flight);
  ASSERT_TRUE(k.TakeKeys({raw, sizeof(info)}));
  EXPECT_EQ(k.switch_at, 100u);
  EXPECT_FALSE(k.TakeKeys({raw, sizeof(info)}));  // once
  k.next_type = 22;
  const uint8_t ticket[7] = {4, 0, 0, 3, 1, 2, 3};
  k.Wrote(ticket);
  k.Wrote(flight);
  ASSERT_EQ(k.control.size(), 1u);
  EXPECT_EQ(k.control.front().begin, 100u);
  EXPECT_EQ(k.control.front().end, 107u);
  EXPECT_EQ(k.control.front().type, 22);
  EXPECT_EQ(k.written, 207u);
  EXPECT_FALSE(k.key_update_at.has_value());
  // The stream's sends: the flight OpenSSL sealed, the keys, the ticket alone, then data.
  uint8_t type = 9;
  EXPECT_EQ(k.NextSend(207, &type), 100u);
  EXPECT_EQ(type, 0);
  EXPECT_FALSE(k.keys_due());
  k.Sent(60);  // a short send
  EXPECT_EQ(k.NextSend(147, &type), 40u);
  k.Sent(40);
  EXPECT_TRUE(k.keys_due());
  k.keys_given = true;
  EXPECT_EQ(k.NextSend(107, &type), 7u);
  EXPECT_EQ(type, 22);
  k.Sent(7);
  EXPECT_TRUE(k.control.empty());
  EXPECT_EQ(k.NextSend(100, &type), 100u);
  EXPECT_EQ(type, 0);
  // A KeyUpdate: data up to it goes, nothing from it on.
  k.next_type = 22;
  const uint8_t key_update[5] = {24, 0, 0, 1, 1};
  k.Wrote(key_update);
  EXPECT_EQ(k.key_update_at, 207u);
  EXPECT_EQ(k.NextSend(105, &type), 100u);
  k.Sent(100);
  EXPECT_TRUE(k.at_key_update());
  EXPECT_EQ(k.NextSend(5, &type), 0u);
}

}  // namespace
}  // namespace camtunnel::runtime
