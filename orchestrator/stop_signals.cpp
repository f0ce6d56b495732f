#include "orchestrator/stop_signals.h"

#include <cerrno>
#include <ctime>
#include <pthread.h>
#include <stdexcept>
#include <system_error>

namespace daenr::orchestrator {

namespace {

void check(int rc, const char* what) {
  // pthread_* return the error; sigemptyset and sigaddset return -1 and set errno.
  if (rc > 0) throw std::system_error(rc, std::generic_category(), what);
  if (rc < 0) throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

StopSignals::StopSignals(std::vector<int> signals, std::atomic<bool>& flag)
    : signals_(std::move(signals)), flag_(flag) {
  // The destructor wakes the waiter with one of them; with none it would wait for ever.
  if (signals_.empty()) throw std::invalid_argument("StopSignals: no signal to wait for");
  check(sigemptyset(&set_), "sigemptyset");
  for (int sig : signals_) check(sigaddset(&set_, sig), "sigaddset");
  check(pthread_sigmask(SIG_BLOCK, &set_, &previous_mask_), "pthread_sigmask");
  try {
    // Started after the mask is set, so the waiter has the signals blocked as sigwait() needs.
    waiter_ = std::thread([this] { wait_loop(); });
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
    throw;
  }
}

void StopSignals::wait_loop() {
  for (;;) {
    int sig = 0;
    if (sigwait(&set_, &sig) != 0) continue;  // only EINVAL, for a set this class built
    if (closing_.load()) return;
    last_signal_.store(sig);
    count_.fetch_add(1);
    flag_.store(true);
  }
}

StopSignals::~StopSignals() {
  closing_.store(true);
  pthread_kill(waiter_.native_handle(), signals_.front());
  waiter_.join();
  // A signal that came while the waiter was closing is still a request to stop; taken here,
  // it does not reach the restored mask's handler or default action.
  const timespec now{0, 0};
  for (int sig; (sig = sigtimedwait(&set_, nullptr, &now)) > 0;) {
    last_signal_.store(sig);
    count_.fetch_add(1);
    flag_.store(true);
  }
  pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
}

}  // namespace daenr::orchestrator
