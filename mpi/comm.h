#pragma once
// The little of MPI the orchestrator and the workers need, with RAII for its handles and
// waits that do not burn a core: Open MPI busy-polls inside blocking calls,
// which on a 2-core machine takes half of the compute away from the workers
// while rank 0 merely waits for their messages.
//
// The process's MPI lifecycle belongs to main(): it calls init() (MPI_Init_thread), and
// MPI_Finalize or MPI_Abort itself. Libraries throw; an error that leaves other ranks waiting
// for this one is an AbortWorld, which main() answers with MPI_Abort.

#include <functional>
#include <mpi.h>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpi/check.h"

namespace daenr::mpi {

/// An error past the point where the other ranks can still be told: they wait for this rank
/// in a message or a collective, and only MPI_Abort ends them. what() says which rank and why.
class AbortWorld : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// True when this process was started by mpirun / mpiexec / srun (their
/// environment says so); daenr then joins the MPI world, and otherwise runs
/// in process without initialising MPI at all.
bool launched_by_mpi();
/// The same, reading the environment through `env` (getenv's contract: null when unset), for
/// callers that take a test's environment (worker/cpu_share.h): one list of launchers.
bool launched_by_mpi(const std::function<const char*(const char*)>& env);

struct World {
  int rank = 0, size = 1;
};

/// MPI_Init_thread with MPI_THREAD_SERIALIZED, and errors returned as codes (check()) rather
/// than aborting the world. For main() alone, which finalises (MPI_Finalize) once every
/// communicator is freed.
World init(int* argc, char*** argv);

/// Spins, then sleeps longer and longer (5 us doubling to 1 ms): a rank that waits for a
/// message yields its core to the ranks that compute. reset() after something arrived.
class Backoff {
 public:
  void pause();
  void reset() { polls_ = 0, sleep_us_ = 5; }

 private:
  int polls_ = 0, sleep_us_ = 5;
};

/// A communicator this process owns (freed on destruction), or a borrowed one
/// (MPI_COMM_WORLD, MPI_COMM_NULL) that it does not.
class Comm {
 public:
  Comm() = default;
  static Comm borrow(MPI_Comm comm) { return Comm(comm, false); }
  /// MPI_Comm_split of `parent`; colour MPI_UNDEFINED gives MPI_COMM_NULL.
  static Comm split(MPI_Comm parent, int colour, int key);
  ~Comm();
  Comm(Comm&& other) noexcept;
  Comm& operator=(Comm&& other) noexcept;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  MPI_Comm get() const { return comm_; }
  bool null() const { return comm_ == MPI_COMM_NULL; }
  int rank() const;
  int size() const;

 private:
  Comm(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {}
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
};

/// Waits for `request` with MPI_Test and a growing sleep (from a few
/// microseconds up to one millisecond), so that a waiting rank yields its core.
void wait_politely(MPI_Request& request, MPI_Status* status = nullptr);

/// A message that has arrived from anyone, or nothing (non-blocking).
std::optional<MPI_Status> poll(MPI_Comm comm, int tag = MPI_ANY_TAG);

/// Short text messages (JSON); a send returns once the data is out of the buffer.
void send_text(const std::string& text, int dest, int tag, MPI_Comm comm);
/// Receives the message `status` announced (from poll).
std::string recv_text(const MPI_Status& status, MPI_Comm comm);
/// Waits politely for a message from `source` with `tag` and returns it.
std::string recv_text_politely(int source, int tag, MPI_Comm comm, MPI_Status* status = nullptr);
/// Broadcast of a string from `root`, waiting politely.
void broadcast_text(std::string& text, int root, MPI_Comm comm);
/// Broadcast of one int from `root`, waiting politely.
int broadcast_int(int value, int root, MPI_Comm comm);
/// Every rank's `text`, in rank order, at `root` (empty elsewhere); collective, waiting politely.
std::vector<std::string> gather_text(const std::string& text, int root, MPI_Comm comm);

}  // namespace daenr::mpi
