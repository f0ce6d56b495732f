#include "mpi/check.h"

#include <fmt/format.h>
#include <mpi.h>

#include <cstdio>
#include <string>
#include <string_view>

namespace daenr::mpi {

namespace {

// "orchestrator/mpi_runner.cpp" rather than the build machine's absolute path: the source root
// is where this very file lies, less "mpi/check.cpp".
std::string_view short_file(std::string_view file) {
  constexpr std::string_view self = __FILE__, tail = "mpi/check.cpp";
  constexpr std::string_view root = self.ends_with(tail) ? self.substr(0, self.size() - tail.size()) : "";
  return !root.empty() && file.starts_with(root) ? file.substr(root.size()) : file;
}

std::string message(int rc, const char* call, const std::source_location& where) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) length = 0;
  return fmt::format("{} failed ({}:{}): {}", call, short_file(where.file_name()), where.line(),
                     length > 0 ? std::string(text, static_cast<std::size_t>(length))
                                : fmt::format("MPI error code {}", rc));
}

}  // namespace

void check(int rc, const char* call, std::source_location where) {
  if (rc != MPI_SUCCESS) throw MpiError(message(rc, call, where));
}

void check_quietly(int rc, const char* call, std::source_location where) noexcept {
  if (rc == MPI_SUCCESS) return;
  try {
    std::fprintf(stderr, "daenr: warning: %s\n", message(rc, call, where).c_str());
  } catch (...) {
    std::fprintf(stderr, "daenr: warning: %s failed\n", call);
  }
}

}  // namespace daenr::mpi
