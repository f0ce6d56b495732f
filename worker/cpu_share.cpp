#include "worker/cpu_share.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <sched.h>
#include <sstream>
#include <string_view>
#include <unistd.h>

#include "mpi/comm.h"

namespace daenr::worker {

namespace {

std::optional<long long> whole_number(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  long long value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<int> quota_cpus(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  return static_cast<int>(std::max<long long>(1, quota / period));
}

std::string read_small_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The tightest quota on the way from this process's cgroup up to the root of the hierarchy it
// sees (a container sees its own cgroup as the root): a parent's limit binds its children.
std::optional<int> tightest_quota(const std::filesystem::path& mount, std::filesystem::path group,
                                  bool v2) {
  std::optional<int> tightest;
  for (;;) {
    const auto dir = mount / group.relative_path();
    std::optional<int> q;
    if (v2) {
      q = cpu_quota_v2(read_small_file(dir / "cpu.max"));
    } else {
      q = cpu_quota_v1(read_small_file(dir / "cpu.cfs_quota_us"),
                       read_small_file(dir / "cpu.cfs_period_us"));
    }
    if (q && (!tightest || *q < *tightest)) tightest = q;
    if (!group.has_relative_path()) return tightest;
    group = group.parent_path();
  }
}

// From /proc/self/cgroup: "0::/path" (v2) or "N:cpu,cpuacct:/path" (v1's cpu controller).
std::optional<int> cgroup_quota() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  std::optional<int> tightest;
  auto keep = [&](std::optional<int> q) {
    if (q && (!tightest || *q < *tightest)) tightest = q;
  };
  while (std::getline(in, line)) {
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::filesystem::path group = line.substr(second + 1);
    if (controllers.empty()) {
      keep(tightest_quota("/sys/fs/cgroup", group, true));
      continue;
    }
    std::stringstream names(controllers);
    for (std::string name; std::getline(names, name, ',');) {
      if (name != "cpu") continue;
      for (const char* mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
        keep(tightest_quota(mount, group, false));
      }
    }
  }
  return tightest;
}

}  // namespace

bool threads_have_own_cpus(const CpuShare& s) {
  if (s.threads < 2 || s.processes < 1) return false;
  const int computing = std::max(1, s.processes - s.idle);
  if (static_cast<long long>(s.threads) * computing <= s.cpus) return true;
  // Bound by the launcher: this process's mask is part of the node, and if every process of the
  // run has a mask of this size they fit in the node side by side.
  return s.mask_cpus < s.online && s.threads <= s.cpus &&
         static_cast<long long>(s.mask_cpus) * s.processes <= s.online;
}

int processes_on_this_node(const Environment& env) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"}) {
    if (const char* value = env(name)) {
      const auto n = whole_number(value);
      return n && *n >= 1 && *n < (1 << 20) ? static_cast<int>(*n) : 0;
    }
  }
  // srun: "4", "4(x3)" or "4(x2),3": tasks per node, the largest of which (a node with fewer
  // tasks than that only waits more passively than it could).
  if (const char* value = env("SLURM_STEP_TASKS_PER_NODE"); value && env("SLURM_PROCID")) {
    long long most = 0;
    std::stringstream parts(value);
    for (std::string part; std::getline(parts, part, ',');) {
      const auto n = whole_number(part.substr(0, part.find('(')));
      if (!n || *n < 1) return 0;
      most = std::max(most, *n);
    }
    return most >= 1 && most < (1 << 20) ? static_cast<int>(most) : 0;
  }
  return mpi::launched_by_mpi(env) ? 0 : 1;  // 0: an MPI launcher that does not say
}

bool whole_run_on_this_node(const Environment& env) {
  auto same = [&](const char* local, const char* world) {
    const char* l = env(local);
    const char* w = env(world);
    return l != nullptr && w != nullptr && std::strcmp(l, w) == 0;
  };
  if (same("OMPI_COMM_WORLD_LOCAL_SIZE", "OMPI_COMM_WORLD_SIZE")) return true;
  if (same("MPI_LOCALNRANKS", "PMI_SIZE")) return true;
  const char* nodes = env("SLURM_STEP_NUM_NODES");
  return nodes != nullptr && env("SLURM_PROCID") != nullptr && std::strcmp(nodes, "1") == 0;
}

std::optional<int> cpu_quota_v2(const std::string& cpu_max) {
  std::stringstream in(cpu_max);
  std::string quota, period;
  if (!(in >> quota >> period) || quota == "max") return std::nullopt;
  const auto q = whole_number(quota), p = whole_number(period);
  if (!q || !p) return std::nullopt;
  return quota_cpus(*q, *p);
}

std::optional<int> cpu_quota_v1(const std::string& quota_us, const std::string& period_us) {
  const auto q = whole_number(quota_us), p = whole_number(period_us);
  if (!q || !p) return std::nullopt;
  return quota_cpus(*q, *p);
}

CpuShare this_process(int threads, const Environment& env, bool orchestrated) {
  CpuShare s;
  s.threads = threads;
  s.processes = processes_on_this_node(env);
  if (orchestrated && s.processes > 1 && whole_run_on_this_node(env)) s.idle = 1;
  s.online = static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  cpu_set_t mask;
  CPU_ZERO(&mask);
  s.mask_cpus = ::sched_getaffinity(0, sizeof(mask), &mask) == 0 ? CPU_COUNT(&mask) : s.online;
  s.mask_cpus = std::max(1, s.mask_cpus);
  s.cpus = s.mask_cpus;
  if (const auto quota = cgroup_quota()) s.cpus = std::min(s.cpus, *quota);
  return s;
}

std::string oversubscription_warning(const CpuShare& s) {
  if (s.threads <= s.cpus) return {};
  // mpirun -n 2 or fewer binds each rank to a core by default (Open MPI 4.1).
  const bool bound = s.processes > 1 && s.mask_cpus < s.online;
  return fmt::format(
      "daenr: warning: train.threads = {}, but this process may run on {} CPU{} (its affinity "
      "mask{}), so its "
      "threads take turns{}",
      s.threads, s.cpus, s.cpus == 1 ? "" : "s", s.cpus < s.mask_cpus ? " and CPU quota" : "",
      bound ? "; under mpirun, which binds each of 2 or fewer ranks to one core, add --bind-to none"
            : "");
}

std::optional<std::string> wait_policy(const CpuShare& share) {
  if (threads_have_own_cpus(share)) return std::nullopt;
  return "passive";
}

}  // namespace daenr::worker
