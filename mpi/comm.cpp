#include "mpi/comm.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace daenr::mpi {

// MPI_Test first spins a little (a reply usually comes within microseconds),
// then sleeps longer and longer, up to 1 ms: the latency this adds is small
// against a training job, and the core goes to the ranks that compute.
void Backoff::pause() {
  if (++polls_ < 64) return;
  std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
  sleep_us_ = std::min(sleep_us_ * 2, 1000);
}

bool launched_by_mpi(const std::function<const char*(const char*)>& env) {
  // Open MPI's mpirun, then PMIx (srun --mpi=pmix, prterun), then PMI-1/2 (srun --mpi=pmi2).
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (env(var) != nullptr) return true;
  }
  return false;
}

bool launched_by_mpi() {
  return launched_by_mpi([](const char* name) { return std::getenv(name); });
}

World init(int* argc, char*** argv) {
  int provided = 0;
  // SERIALIZED: MPI is called by one thread at a time, but not always the
  // main one: with CUDA tensors and no NCCL, the synchronised BatchNorm's
  // all-reduce runs in LibTorch's backward thread (worker/gradient_reducer.h).
  check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_SERIALIZED) {
    throw MpiError("MPI_Init_thread: this MPI library does not provide MPI_THREAD_SERIALIZED");
  }
  // Errors come back as return codes (turned into exceptions by `check`),
  // not as an abort of the whole world.
  check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  World world;
  check(MPI_Comm_rank(MPI_COMM_WORLD, &world.rank), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &world.size), "MPI_Comm_size");
  return world;
}

Comm Comm::split(MPI_Comm parent, int colour, int key) {
  MPI_Comm out = MPI_COMM_NULL;
  check(MPI_Comm_split(parent, colour, key, &out), "MPI_Comm_split");
  return Comm(out, out != MPI_COMM_NULL);
}

Comm::~Comm() {
  if (owned_ && comm_ != MPI_COMM_NULL) check_quietly(MPI_Comm_free(&comm_), "MPI_Comm_free");
}

Comm::Comm(Comm&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)), owned_(std::exchange(other.owned_, false)) {}

Comm& Comm::operator=(Comm&& other) noexcept {
  if (this != &other) {
    if (owned_ && comm_ != MPI_COMM_NULL) check_quietly(MPI_Comm_free(&comm_), "MPI_Comm_free");
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    owned_ = std::exchange(other.owned_, false);
  }
  return *this;
}

int Comm::rank() const {
  int r = 0;
  check(MPI_Comm_rank(comm_, &r), "MPI_Comm_rank");
  return r;
}

int Comm::size() const {
  int s = 0;
  check(MPI_Comm_size(comm_, &s), "MPI_Comm_size");
  return s;
}

void wait_politely(MPI_Request& request, MPI_Status* status) {
  Backoff backoff;
  for (;;) {
    int done = 0;
    check(MPI_Test(&request, &done, status ? status : MPI_STATUS_IGNORE), "MPI_Test");
    if (done) return;
    backoff.pause();
  }
}

std::optional<MPI_Status> poll(MPI_Comm comm, int tag) {
  int flag = 0;
  MPI_Status status;
  check(MPI_Iprobe(MPI_ANY_SOURCE, tag, comm, &flag, &status), "MPI_Iprobe");
  if (!flag) return std::nullopt;
  return status;
}

void send_text(const std::string& text, int dest, int tag, MPI_Comm comm) {
  MPI_Request request;
  check(MPI_Isend(text.data(), static_cast<int>(text.size()), MPI_CHAR, dest, tag, comm, &request), "MPI_Isend");
  wait_politely(request);
}

std::string recv_text(const MPI_Status& status, MPI_Comm comm) {
  int count = 0;
  check(MPI_Get_count(&status, MPI_CHAR, &count), "MPI_Get_count");
  std::string text(static_cast<std::size_t>(count), '\0');
  check(MPI_Recv(text.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, comm, MPI_STATUS_IGNORE),
        "MPI_Recv");
  return text;
}

std::string recv_text_politely(int source, int tag, MPI_Comm comm, MPI_Status* status_out) {
  Backoff backoff;
  for (;;) {
    int flag = 0;
    MPI_Status status;
    check(MPI_Iprobe(source, tag, comm, &flag, &status), "MPI_Iprobe");
    if (flag) {
      if (status_out) *status_out = status;
      return recv_text(status, comm);
    }
    backoff.pause();
  }
}

int broadcast_int(int value, int root, MPI_Comm comm) {
  MPI_Request request;
  check(MPI_Ibcast(&value, 1, MPI_INT, root, comm, &request), "MPI_Ibcast");
  wait_politely(request);
  return value;
}

void broadcast_text(std::string& text, int root, MPI_Comm comm) {
  const int size = broadcast_int(static_cast<int>(text.size()), root, comm);
  text.resize(static_cast<std::size_t>(size));
  if (size == 0) return;
  MPI_Request request;
  check(MPI_Ibcast(text.data(), size, MPI_CHAR, root, comm, &request), "MPI_Ibcast");
  wait_politely(request);
}

std::vector<std::string> gather_text(const std::string& text, int root, MPI_Comm comm) {
  int rank = 0, size = 1;
  check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  int length = static_cast<int>(text.size());
  std::vector<int> lengths(rank == root ? static_cast<std::size_t>(size) : 0);
  MPI_Request request;
  check(MPI_Igather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, root, comm, &request), "MPI_Igather");
  wait_politely(request);
  std::vector<int> offsets(lengths.size());
  std::string all;
  if (rank == root) {
    int total = 0;
    for (std::size_t i = 0; i < lengths.size(); ++i) offsets[i] = std::exchange(total, total + lengths[i]);
    all.resize(static_cast<std::size_t>(total));
  }
  check(MPI_Igatherv(text.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, root,
                     comm, &request),
        "MPI_Igatherv");
  wait_politely(request);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    out.push_back(all.substr(static_cast<std::size_t>(offsets[i]), static_cast<std::size_t>(lengths[i])));
  }
  return out;
}

}  // namespace daenr::mpi
