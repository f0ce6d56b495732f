#pragma once
// SHA-256 (OpenSSL's EVP API) for content fingerprints and job ids.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace daenr::job {

/// An incremental SHA-256. Move-only; owns its OpenSSL context.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& update(const void* data, std::size_t bytes);
  Sha256& update(std::string_view text) { return update(text.data(), text.size()); }
  /// The digest as 64 lower-case hex characters. The hasher is spent after it.
  std::string hex();

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
};

/// SHA-256 of `text` as hex.
std::string sha256_hex(std::string_view text);

}  // namespace daenr::job
