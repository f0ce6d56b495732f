// How daenr chooses OpenMP's waiting (worker/cpu_share.h): from the threads a process asks
// for, the run's processes on the node and the CPUs it may use.

#include "worker/cpu_share.h"

#include <gtest/gtest.h>
#include <map>
#include <sched.h>
#include <string>

namespace daenr::worker {
namespace {

Environment table(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

CpuShare share(int threads, int processes, int cpus, int mask_cpus, int online) {
  return CpuShare{threads, processes, 0, cpus, mask_cpus, online};
}

TEST(CpuShare, ThreadsHaveOwnCpusOnlyWhenTheRunsThreadsFitOrTheLauncherBoundThem) {
  // One process on the whole machine.
  EXPECT_TRUE(threads_have_own_cpus(share(2, 1, 2, 2, 2)));
  EXPECT_TRUE(threads_have_own_cpus(share(4, 1, 8, 8, 8)));
  EXPECT_FALSE(threads_have_own_cpus(share(3, 1, 2, 2, 2)));  // more threads than CPUs
  EXPECT_FALSE(threads_have_own_cpus(share(1, 1, 2, 2, 2)));  // one thread: no team to wait
  // mpirun -n 3 on 2 cores (the quick sweep): 3 x 2 threads on 2 CPUs.
  EXPECT_FALSE(threads_have_own_cpus(share(2, 3, 2, 2, 2)));
  EXPECT_TRUE(threads_have_own_cpus(share(2, 3, 8, 8, 8)));
  // A launcher that does not say how many processes it started.
  EXPECT_FALSE(threads_have_own_cpus(share(2, 0, 64, 64, 64)));
  // A cgroup quota of 1 CPU under a mask of 2.
  EXPECT_FALSE(threads_have_own_cpus(share(2, 1, 1, 2, 2)));
  // srun binding 9 tasks to 4 CPUs each on a 36-CPU node: each has its own.
  EXPECT_TRUE(threads_have_own_cpus(share(4, 9, 4, 4, 36)));
  // ... but not with more threads than its mask, nor masks that cannot all be distinct.
  EXPECT_FALSE(threads_have_own_cpus(share(5, 9, 4, 4, 36)));
  EXPECT_FALSE(threads_have_own_cpus(share(4, 10, 4, 4, 36)));
  // mpirun -n 2 binds each rank to a core: two threads on one CPU.
  EXPECT_FALSE(threads_have_own_cpus(share(2, 2, 1, 1, 2)));
  // Bound to 4 CPUs of which a quota leaves 2.
  EXPECT_FALSE(threads_have_own_cpus(share(4, 2, 2, 4, 16)));
}

TEST(CpuShare, ASweepsRankZeroTrainsNothingAndNeedsNoCpuOfItsOwn) {
  // mpirun -n 2 --bind-to none on 2 cores: rank 0 and one worker of 2 threads.
  CpuShare s = share(2, 2, 2, 2, 2);
  EXPECT_FALSE(threads_have_own_cpus(s));
  s.idle = 1;
  EXPECT_TRUE(threads_have_own_cpus(s));
  // mpirun -n 3 on 4 cores, 2 threads a worker (the README's rule: ranks x threads cores, rank 0
  // not counted).
  EXPECT_TRUE(threads_have_own_cpus(CpuShare{2, 3, 1, 4, 4, 4}));
  EXPECT_FALSE(threads_have_own_cpus(CpuShare{3, 3, 1, 4, 4, 4}));

  const auto env = table({{"OMPI_COMM_WORLD_SIZE", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}});
  EXPECT_EQ(this_process(2, env, true).idle, 1);
  EXPECT_EQ(this_process(2, env, false).idle, 0);  // `train`, or a sweep without MPI
  // Ranks on two nodes: rank 0 may be on the other one, so every rank here counts.
  EXPECT_EQ(
      this_process(2, table({{"OMPI_COMM_WORLD_SIZE", "6"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}}),
                   true)
          .idle,
      0);
}

TEST(CpuShare, TheWholeRunIsOnThisNodeWhenTheLauncherSaysSo) {
  EXPECT_TRUE(whole_run_on_this_node(
      table({{"OMPI_COMM_WORLD_SIZE", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}})));
  EXPECT_FALSE(whole_run_on_this_node(
      table({{"OMPI_COMM_WORLD_SIZE", "6"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}})));
  EXPECT_TRUE(whole_run_on_this_node(table({{"PMI_SIZE", "4"}, {"MPI_LOCALNRANKS", "4"}})));
  EXPECT_TRUE(
      whole_run_on_this_node(table({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_NODES", "1"}})));
  EXPECT_FALSE(
      whole_run_on_this_node(table({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_NODES", "2"}})));
  EXPECT_FALSE(whole_run_on_this_node(table({})));
}

TEST(CpuShare, MoreThreadsThanCpusIsWarnedOfWithTheFixForMpirunsBinding) {
  EXPECT_EQ(oversubscription_warning(share(2, 1, 2, 2, 2)), "");
  EXPECT_EQ(oversubscription_warning(share(4, 1, 2, 2, 2)),
            "daenr: warning: train.threads = 4, but this process may run on 2 CPUs (its affinity "
            "mask), so its "
            "threads take turns");
  EXPECT_EQ(oversubscription_warning(share(2, 1, 1, 2, 2)),
            "daenr: warning: train.threads = 2, but this process may run on 1 CPU (its affinity "
            "mask and CPU "
            "quota), so its threads take turns");
  EXPECT_EQ(oversubscription_warning(share(2, 2, 1, 1, 2)),
            "daenr: warning: train.threads = 2, but this process may run on 1 CPU (its affinity "
            "mask), so its "
            "threads take turns; under mpirun, which binds each of 2 or fewer ranks to one core, "
            "add --bind-to none");
}

TEST(CpuShare, WaitPolicyIsPassiveUnlessTheThreadsHaveOwnCpus) {
  EXPECT_FALSE(wait_policy(share(2, 1, 2, 2, 2)).has_value());  // libgomp's default
  EXPECT_EQ(wait_policy(share(2, 3, 2, 2, 2)), "passive");
  EXPECT_EQ(wait_policy(share(1, 1, 2, 2, 2)), "passive");
}

TEST(CpuShare, ProcessesOnTheNodeComeFromTheLauncher) {
  EXPECT_EQ(processes_on_this_node(table({})), 1);  // not launched by MPI
  EXPECT_EQ(processes_on_this_node(
                table({{"OMPI_COMM_WORLD_SIZE", "6"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}})),
            3);
  EXPECT_EQ(processes_on_this_node(table({{"MPI_LOCALNRANKS", "4"}, {"PMI_RANK", "0"}})), 4);
  EXPECT_EQ(
      processes_on_this_node(table({{"SLURM_PROCID", "0"}, {"SLURM_STEP_TASKS_PER_NODE", "5"}})),
      5);
  EXPECT_EQ(processes_on_this_node(
                table({{"SLURM_PROCID", "2"}, {"SLURM_STEP_TASKS_PER_NODE", "4(x3)"}})),
            4);
  EXPECT_EQ(processes_on_this_node(
                table({{"SLURM_PROCID", "2"}, {"SLURM_STEP_TASKS_PER_NODE", "2(x2),7,1"}})),
            7);
  // A batch script's own step, not a task of srun's: its variables say nothing of this process.
  EXPECT_EQ(processes_on_this_node(table({{"SLURM_STEP_TASKS_PER_NODE", "8"}})), 1);
  // Launched, but not said, or said wrongly: unknown.
  EXPECT_EQ(processes_on_this_node(table({{"PMIX_RANK", "1"}})), 0);
  EXPECT_EQ(processes_on_this_node(table({{"OMPI_COMM_WORLD_LOCAL_SIZE", "three"}})), 0);
  EXPECT_EQ(processes_on_this_node(table({{"OMPI_COMM_WORLD_LOCAL_SIZE", "0"}})), 0);
  EXPECT_EQ(
      processes_on_this_node(table({{"SLURM_PROCID", "0"}, {"SLURM_STEP_TASKS_PER_NODE", "x(2)"}})),
      0);
}

TEST(CpuShare, CgroupQuotasAreWholeCpusRoundedDown) {
  EXPECT_FALSE(cpu_quota_v2("max 100000\n").has_value());
  EXPECT_EQ(cpu_quota_v2("200000 100000\n"), 2);
  EXPECT_EQ(cpu_quota_v2("150000 100000\n"), 1);
  EXPECT_EQ(cpu_quota_v2("50000 100000\n"), 1);  // at least one
  EXPECT_FALSE(cpu_quota_v2("").has_value());    // no such file
  EXPECT_FALSE(cpu_quota_v2("junk").has_value());
  EXPECT_FALSE(cpu_quota_v1("-1\n", "100000\n").has_value());
  EXPECT_EQ(cpu_quota_v1("400000\n", "100000\n"), 4);
  EXPECT_FALSE(cpu_quota_v1("", "").has_value());
}

TEST(CpuShare, ThisProcessSeesItsOwnMaskAndAtLeastOneCpu) {
  const CpuShare s = this_process(2, table({{"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}}));
  EXPECT_EQ(s.threads, 2);
  EXPECT_EQ(s.processes, 3);
  EXPECT_GE(s.cpus, 1);
  EXPECT_LE(s.cpus, s.mask_cpus);
  EXPECT_LE(s.mask_cpus, s.online);

  // Narrowed to one CPU (the calling thread's mask, which is what it reads), then restored.
  cpu_set_t before, one;
  ASSERT_EQ(::sched_getaffinity(0, sizeof(before), &before), 0);
  CPU_ZERO(&one);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &before)) {
      CPU_SET(cpu, &one);
      break;
    }
  }
  ASSERT_EQ(::sched_setaffinity(0, sizeof(one), &one), 0);
  const CpuShare narrowed = this_process(2, table({}));
  ASSERT_EQ(::sched_setaffinity(0, sizeof(before), &before), 0);
  EXPECT_EQ(narrowed.mask_cpus, 1);
  EXPECT_EQ(narrowed.cpus, 1);
  EXPECT_EQ(wait_policy(narrowed), "passive");
}

}  // namespace
}  // namespace daenr::worker
