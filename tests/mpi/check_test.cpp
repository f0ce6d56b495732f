// mpi::check, the one check of MPI return codes: a failed call's error names the call, the file
// and line of the call site, and MPI's own text, on every rank alike.

#include <gtest/gtest.h>
#include <mpi.h>

#include <string>

#include "mpi/check.h"

namespace {

TEST(MpiCheck, AFailedCallNamesTheCallItsPlaceAndMpisText) {
  int n = 0;
  const int line = __LINE__ + 2;
  try {
    daenr::mpi::check(MPI_Comm_size(MPI_COMM_NULL, &n), "MPI_Comm_size");
    FAIL() << "MPI_Comm_size on MPI_COMM_NULL succeeded";
  } catch (const daenr::mpi::MpiError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("MPI_Comm_size failed (tests/mpi/check_test.cpp:" + std::to_string(line) + "): ", 0), 0u)
        << what;
    EXPECT_NE(what.find("MPI_ERR_COMM"), std::string::npos) << what;
  }
  // Success is silent.
  EXPECT_NO_THROW(daenr::mpi::check(MPI_Comm_size(MPI_COMM_WORLD, &n), "MPI_Comm_size"));
  EXPECT_GE(n, 1);
}

}  // namespace
