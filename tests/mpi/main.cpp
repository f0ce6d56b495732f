// The multi-rank tests' main: MPI around GoogleTest. Every rank runs every test; rank 0
// prints GoogleTest's usual report and the other ranks print their failures only, each line
// marked with its rank. The exit code is the worst over the ranks.

#include <cstdio>
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi/comm.h"

namespace {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  // SERIALIZED: with a CUDA device and no NCCL, LibTorch's backward thread reduces BatchNorm
  // statistics through MPI while the main thread waits (see worker/gradient_reducer.h).
  daenr::mpi::init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  daenr::mpi::check(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  int result = RUN_ALL_TESTS();
  daenr::mpi::check(MPI_Allreduce(MPI_IN_PLACE, &result, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  daenr::mpi::check(MPI_Finalize(), "MPI_Finalize");
  return result;
}
