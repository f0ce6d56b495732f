#include "job/hash.h"

#include <openssl/evp.h>
#include <stdexcept>

namespace daenr::job {

struct Sha256::Context {
  EVP_MD_CTX* md = nullptr;
  ~Context() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Context>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
  }
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

Sha256& Sha256::update(const void* data, std::size_t bytes) {
  if (EVP_DigestUpdate(ctx_->md, data, bytes) != 1)
    throw std::runtime_error("OpenSSL: SHA-256 update failed");
  return *this;
}

std::string Sha256::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, digest, &len) != 1)
    throw std::runtime_error("OpenSSL: SHA-256 final failed");
  // By table, not fmt: a sweep hashes every job's configuration, and 32
  // formatted bytes per hash were a third of the time of expanding one.
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * len, '0');
  for (unsigned int i = 0; i < len; ++i) {
    out[2 * i] = kDigits[digest[i] >> 4];
    out[2 * i + 1] = kDigits[digest[i] & 0xf];
  }
  return out;
}

std::string sha256_hex(std::string_view text) {
  return Sha256().update(text).hex();
}

}  // namespace daenr::job
