#pragma once
// A temporary directory for one test, removed with everything in it.
//
// Removal uses POSIX nftw rather than std::filesystem::remove_all: PyTorch's
// bundled LibTorch (the CUDA build's) exports its own copy of some
// std::filesystem functions, and its remove_all crashes when called from a
// program built against the system's libstdc++.

#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace daenr::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "daenr-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  static void remove_tree(const std::filesystem::path& root) {
    auto remove_one = [](const char* p, const struct stat*, int, struct FTW*) { return std::remove(p); };
    ::nftw(root.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS);
  }

 private:
  std::filesystem::path path_;
};

}  // namespace daenr::testing
