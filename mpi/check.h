#pragma once
// The one check of an MPI call's return code. daenr sets MPI_ERRORS_RETURN on the world (see
// init), so a failed call returns a code instead of aborting every rank; each call site passes
// its code through check(), whose message names the call and the place:
//   "MPI_Iprobe failed (orchestrator/mpi_runner.cpp:212): MPI_ERR_COMM: invalid communicator"

#include <source_location>
#include <stdexcept>

namespace daenr::mpi {

/// An MPI call that failed; what() names the call and where it was made.
class MpiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Throws MpiError unless `rc` is MPI_SUCCESS. `call` names the MPI function (and, where it
/// helps, what it carried); `where` is the caller's line.
void check(int rc, const char* call, std::source_location where = std::source_location::current());

/// For destructors, which must not throw: the same check, its message printed to stderr as a
/// warning instead.
void check_quietly(int rc, const char* call, std::source_location where = std::source_location::current()) noexcept;

}  // namespace daenr::mpi
