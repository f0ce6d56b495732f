// orchestrator/stop_signals.h: the stop signals reach a flag through a thread of their own,
// never through a handler on a thread that computes. Each test runs in a child process of its
// own (a death test, re-executed): the mask is per thread, and only a process whose threads all
// start after StopSignals has them blocked everywhere, as `daenr sweep run` does.

#include "orchestrator/stop_signals.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <stdexcept>
#include <thread>
#include <unistd.h>

#include "models/gemm.h"

namespace daenr::orchestrator {
namespace {

std::atomic<int> g_handler_runs{0};
extern "C" void count_handler_run(int) {
  g_handler_runs.fetch_add(1);
}

// A handler as main() installs one: were the kernel to run it on a computing thread, it would
// count here.
void install_counting_handler(int sig) {
  struct sigaction sa {};
  sa.sa_handler = count_handler_run;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

[[noreturn]] void fail_child(const char* why) {
  std::fprintf(stderr, "%s\n", why);
  std::fflush(stderr);
  std::_Exit(1);
}

bool wait_for(const std::atomic<bool>& flag) {
  for (int i = 0; i < 1000 && !flag.load(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return flag.load();
}

bool blocked_here(int sig) {
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  return sigismember(&mask, sig) == 1;
}

void takes_the_signal_on_its_own_thread() {
  install_counting_handler(SIGUSR2);
  std::atomic<bool> stop{false};
  {
    StopSignals signals({SIGUSR1, SIGUSR2}, stop);
    if (!blocked_here(SIGUSR1) || !blocked_here(SIGUSR2)) fail_child("the signals are not blocked");
    // A thread started now inherits the mask (OpenMP's and MPI's threads start later).
    bool blocked_in_thread = false;
    std::thread([&] { blocked_in_thread = blocked_here(SIGUSR2); }).join();
    if (!blocked_in_thread) fail_child("a thread started afterwards has the signal unblocked");
    if (signals.last_signal() != 0 || stop.load()) fail_child("a stop before any signal");
    kill(getpid(), SIGUSR2);
    if (!wait_for(stop)) fail_child("SIGUSR2 never set the flag");
    if (signals.last_signal() != SIGUSR2 || signals.count() != 1)
      fail_child("not counted as one SIGUSR2");
    if (g_handler_runs.load() != 0)
      fail_child("the handler ran: the signal reached a thread that computes");
  }
  // Closed: the waiter is gone and the mask is back, so the handler takes the next one.
  if (blocked_here(SIGUSR1) || blocked_here(SIGUSR2)) fail_child("the mask was not restored");
  kill(getpid(), SIGUSR2);
  for (int i = 0; i < 1000 && g_handler_runs.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (g_handler_runs.load() != 1) fail_child("after closing, the handler did not take the signal");
  std::_Exit(0);
}

TEST(StopSignals, TakesTheSignalOnItsOwnThreadAndRestoresTheMask) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(takes_the_signal_on_its_own_thread(), ::testing::ExitedWithCode(0), "");
}

void a_pending_signal_is_a_stop_when_closing() {
  std::atomic<bool> stop{false};
  {
    StopSignals signals({SIGUSR1}, stop);
    // Pending on this thread, where it is blocked, until the destructor takes it.
    pthread_kill(pthread_self(), SIGUSR1);
  }
  if (!stop.load()) fail_child("a signal pending at closing was dropped");
  std::_Exit(0);
}

TEST(StopSignals, ASignalPendingWhenClosingIsAStopNotADefaultAction) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Unhandled, SIGUSR1's default action would kill the child.
  EXPECT_EXIT(a_pending_signal_is_a_stop_when_closing(), ::testing::ExitedWithCode(0), "");
}

// uxlfoundation/oneDNN issue 4845: a handler run while oneDNN's JIT f32 GEMM has the stack
// pointer in the heap corrupts it. With a plain handler instead of StopSignals this child
// aborts in free() ("corrupted size vs. prev_size") in every run tried (Debian 12's
// oneDNN 2.6.3, AVX-512). Without oneDNN (models::sgemm_backend() "LibTorch") it checks the
// same protocol on LibTorch's BLAS.
void gemm_under_a_stream_of_signals() {
  install_counting_handler(SIGUSR1);
  std::atomic<bool> stop{false}, done{false};
  StopSignals signals({SIGUSR1}, stop);
  const pid_t self = getpid();
  std::thread sender([&] {
    while (!done.load()) {
      kill(self, SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  });
  const int64_t m = 16, n = 100, k = 1024;  // the shape of a small FR readout's drive
  const auto a = torch::ones({m, k});
  const auto b = torch::full({n, k}, 0.5f);
  bool right = true;
  for (int i = 0; i < 2000 && right; ++i) {
    auto c = torch::empty({m, n});
    auto churn = torch::empty({1000 + i % 5000});  // allocations between products, as training has
    models::sgemm(a, false, b, true, c);
    right = c.eq(512.0f).all().item<bool>();
  }
  done.store(true);
  sender.join();
  if (!right) fail_child("a product came out wrong");
  if (signals.count() == 0 || !stop.load()) fail_child("no signal reached the waiting thread");
  if (g_handler_runs.load() != 0) fail_child("the handler ran on a thread that computes");
  std::_Exit(0);
}

TEST(StopSignals, OneDnnsGemmUnderAStreamOfSignalsLeavesTheHeapWhole) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(gemm_under_a_stream_of_signals(), ::testing::ExitedWithCode(0), "");
}

TEST(StopSignals, NoSignalsIsRefusedBeforeAnythingIsBlocked) {
  std::atomic<bool> stop{false};
  EXPECT_THROW(StopSignals({}, stop), std::invalid_argument);
  EXPECT_FALSE(blocked_here(SIGUSR1));
}

}  // namespace
}  // namespace daenr::orchestrator
