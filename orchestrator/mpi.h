#pragma once
// The little of MPI the orchestrator needs, with RAII for its handles and
// waits that do not burn a core: Open MPI busy-polls inside blocking calls,
// which on a 2-core machine takes half of the compute away from the workers
// while rank 0 merely waits for their messages.

#include <mpi.h>

#include <optional>
#include <stdexcept>
#include <string>

namespace daenr::orchestrator::mpi {

/// An MPI call that failed; what() names it.
class MpiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// True when this process was started by mpirun / mpiexec / srun (their
/// environment says so); daenr then joins the MPI world, and otherwise runs
/// in process without initialising MPI at all.
bool launched_by_mpi();

/// MPI_Init_thread .. MPI_Finalize. One per process, in main().
class Session {
 public:
  Session(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  int rank_ = 0, size_ = 1;
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

}  // namespace daenr::orchestrator::mpi
