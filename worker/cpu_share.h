#pragma once
// How a process's OpenMP threads wait between parallel regions, chosen from whether they have
// CPUs of their own.
//
// libgomp reads OMP_WAIT_POLICY once, when it is loaded, before main() runs, so the choice is
// made from what a process knows before then: the threads its jobs ask for (train.threads), the
// processes of its run on this node (the MPI launcher's environment) and the CPUs it may use.
//  - Every thread of every process has a CPU of its own: libgomp's default, which spins a
//    while after each parallel region and then sleeps. Two threads on two cores trained the
//    readout-only CNN 1.7-1.8x faster than with passive waiting, the CAE 1.6x, and two passive
//    threads were slower than one (bench/README.md, "Threads").
//  - Anything else, or when it cannot tell: passive, sleeping at once. Spinning threads that
//    share cores with other processes' threads (ctest -j2, more ranks x threads than cores)
//    made a 2-core machine about ten times slower.
// A user's own OMP_WAIT_POLICY is always left as it is.

#include <functional>
#include <optional>
#include <string>

namespace daenr::worker {

/// What a process knows, before MPI starts, of the CPUs its run shares.
struct CpuShare {
  /// Intra-op threads each process of the run asks for (the largest train.threads).
  int threads = 1;
  /// The run's processes on this node; 0: launched by MPI, but it does not say how many.
  int processes = 1;
  /// Of those, processes that wait without computing (a sweep's rank 0).
  int idle = 0;
  /// CPUs this process may run on: its affinity mask, less a cgroup CPU quota.
  int cpus = 1;
  /// CPUs in its affinity mask alone.
  int mask_cpus = 1;
  /// CPUs online on this node.
  int online = 1;
};

/// Whether every thread of every process of the run has a CPU of its own: at least two threads
/// (one thread has no team to wait), and either the threads of the run's computing processes fit
/// in this process's CPUs, or the launcher bound each process to CPUs of its own (a mask smaller
/// than the node, the threads fitting in it, and the masks of all processes fitting in the node
/// side by side, as Slurm's and Open MPI's binding give).
bool threads_have_own_cpus(const CpuShare& share);

/// Looks up an environment variable; std::getenv in use, a table in tests.
using Environment = std::function<const char*(const char*)>;

/// The run's processes on this node, from the launcher: Open MPI's mpirun
/// (OMPI_COMM_WORLD_LOCAL_SIZE), MPICH's (MPI_LOCALNRANKS), srun (SLURM_STEP_TASKS_PER_NODE:
/// "4", "4(x3)", "4(x2),3", of which the largest). 1 when no MPI launcher started the process;
/// 0 when one did but none of these says.
int processes_on_this_node(const Environment& env);

/// Whether every process of the run is on this node: Open MPI's and MPICH's local and world
/// sizes agree, or srun's step has one node. Then a sweep's rank 0 is one of them.
bool whole_run_on_this_node(const Environment& env);

/// CPUs a cgroup quota allows: cgroup v2's cpu.max ("200000 100000" is 2; "max 100000" none),
/// or cgroup v1's cpu.cfs_quota_us and cpu.cfs_period_us (a quota of -1 is none). Rounded down,
/// at least 1: under a quota of 1.5 CPUs a spinning second thread spends the quota the first
/// needs.
std::optional<int> cpu_quota_v2(const std::string& cpu_max);
std::optional<int> cpu_quota_v1(const std::string& quota_us, const std::string& period_us);

/// This process's CpuShare on this machine for `threads` threads a process; `orchestrated`: a
/// sweep under MPI, whose rank 0 leases jobs and trains none (counted idle when it is here).
CpuShare this_process(int threads, const Environment& env, bool orchestrated = false);

/// A warning for a process given more threads than CPUs (its threads take turns), else empty.
std::string oversubscription_warning(const CpuShare& share);

/// "passive", or std::nullopt for libgomp's default; see above.
std::optional<std::string> wait_policy(const CpuShare& share);

}  // namespace daenr::worker
