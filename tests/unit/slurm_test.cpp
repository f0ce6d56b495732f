// slurm/: time limits, cluster profiles, the batch script, running a command,
// and the owner names that let a requeued allocation take over its own lock.
// The end-to-end checks against a real Slurm are tests/cli/slurm_e2e.sh.

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include "tests/support/error_of.h"
#include "orchestrator/sweep_runner.h"
#include "slurm/command.h"
#include "slurm/submit.h"
#include "tests/support/temp_dir.h"

namespace daenr::slurm {
namespace {

using daenr::testing::error_of;

using daenr::testing::TempDir;

TEST(SlurmTime, ParsesEverySlurmForm) {
  EXPECT_EQ(parse_slurm_time("30", "--time"), 30 * 60);  // bare minutes
  EXPECT_EQ(parse_slurm_time("5:30", "--time"), 5 * 60 + 30);
  EXPECT_EQ(parse_slurm_time("1:02:03", "--time"), 3723);
  EXPECT_EQ(parse_slurm_time("2-0", "--time"), 2 * 86400);
  EXPECT_EQ(parse_slurm_time("2-12:30", "--time"), 2 * 86400 + 12 * 3600 + 30 * 60);
  EXPECT_EQ(parse_slurm_time("1-00:00:10", "--time"), 86410);
  EXPECT_FALSE(parse_slurm_time("UNLIMITED", "--time").has_value());
  EXPECT_EQ(error_of<SlurmError>([] { parse_slurm_time("1h", "--time"); }),
            "--time '1h': not a Slurm time limit (minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S)");
  EXPECT_EQ(error_of<SlurmError>([] { parse_slurm_time("0", "--time"); }).substr(0, 14), "--time '0': no");
  EXPECT_EQ(error_of<SlurmError>([] { parse_slurm_time("1:2:3:4", "x"); }).substr(0, 13), "x '1:2:3:4': ");
}

TEST(SlurmProfile, LayersCommandLineOverProfileOverDefaults) {
  TempDir dir;
  const auto file = dir.path() / "clusters.toml";
  std::ofstream(file) << "default = \"big\"\n"
                         "[big]\npartition = \"gpu\"\naccount = \"lab7\"\ngpus_per_node = 4\n"
                         "ntasks_per_node = 4\ntime = \"1-00:00:00\"\nsetup = [\"module load openmpi\"]\n"
                         "sbatch = [\"--qos=long\"]\n"
                         "[small]\npartition = \"debug\"\n";
  const Allocation big = load_profile(file, "");
  EXPECT_EQ(*big.partition, "gpu");
  EXPECT_EQ(*big.gpus_per_node, 4);
  Allocation flags;
  flags.partition = "short";
  flags.sbatch = {"--mail-type=END"};
  const Allocation a = overlay(flags, overlay(big, defaults()));
  EXPECT_EQ(*a.partition, "short");    // the flag wins
  EXPECT_EQ(*a.account, "lab7");       // the profile fills what the flags leave
  EXPECT_EQ(*a.ntasks_per_node, 4);
  EXPECT_EQ(*a.nodes, 1);              // the default fills the rest
  EXPECT_EQ(*a.grace_s, 120);
  EXPECT_EQ(*a.grace_signal, "USR2");  // not USR1, which NCCL 2.12 catches
  EXPECT_FALSE(a.jobs_per_gpu.has_value());
  EXPECT_EQ(*a.launcher, "srun");
  EXPECT_EQ(a.sbatch, (std::vector<std::string>{"--qos=long", "--mail-type=END"}));
  EXPECT_EQ(*load_profile(file, "small").partition, "debug");
  EXPECT_FALSE(load_profile(file, "small").account.has_value());
  // No file and no name asked for: no profile. A name with no file: an error.
  EXPECT_FALSE(load_profile(dir.path() / "none.toml", "").partition.has_value());
  EXPECT_EQ(error_of<SlurmError>([&] { load_profile(dir.path() / "none.toml", "big"); }),
            "--cluster big: no profile file " + (dir.path() / "none.toml").string() + " (see docs/slurm.md)");
}

TEST(SlurmProfile, BadProfilesNameFileLineAndKey) {
  TempDir dir;
  const auto file = dir.path() / "c.toml";
  auto bad = [&](const std::string& text, const std::string& name) {
    std::ofstream(file) << text;
    return error_of<SlurmError>([&] { load_profile(file, name); });
  };
  const std::string f = file.string();
  EXPECT_EQ(bad("[a]\npartiton = \"x\"\n", "a"),
            f + ":2:1: a.partiton: unknown key (known: nodes, ntasks_per_node, gpus_per_node, cpus_per_task, "
                "jobs_per_gpu, time, grace, grace_signal, partition, account, launcher, srun_mpi, daenr, sbatch, "
                "setup)");
  EXPECT_EQ(bad("[a]\njobs_per_gpu = 0\n", "a"), f + ":2:16: a.jobs_per_gpu: expected an integer >= 1");
  EXPECT_EQ(bad("[a]\njobs_per_gpu = -2\n", "a"), f + ":2:16: a.jobs_per_gpu: expected an integer >= 1");
  EXPECT_EQ(bad("[a]\njobs_per_gpu = 1.5\n", "a"), f + ":2:16: a.jobs_per_gpu: expected an integer >= 1");
  EXPECT_EQ(bad("[a]\ngrace_signal = \"KILL\"\n", "a"),
            f + ":2:16: a.grace_signal 'KILL': cannot be caught, so the run could not checkpoint; use USR2 (the "
                "default), USR1 or ALRM");
  EXPECT_EQ(bad("[a]\ngrace_signal = 10\n", "a"), f + ":2:16: a.grace_signal: expected a string");
  EXPECT_EQ(bad("[a]\nnodes = 0\n", "a"), f + ":2:9: a.nodes: expected an integer >= 1");
  EXPECT_EQ(bad("[a]\nnodes = \"2\"\n", "a"), f + ":2:9: a.nodes: expected an integer >= 1");
  EXPECT_EQ(bad("[a]\ntime = \"2h\"\n", "a"),
            f + ":2:8: a.time '2h': not a Slurm time limit (minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S)");
  EXPECT_EQ(bad("[a]\nlauncher = \"ssh\"\n", "a"), f + ":2:12: a.launcher: expected \"srun\" or \"mpirun\", got \"ssh\"");
  EXPECT_EQ(bad("[a]\nsetup = \"module load x\"\n", "a"), f + ":2:9: a.setup: expected an array of strings");
  EXPECT_EQ(bad("[a]\nnodes = 1\n", "b"), f + ": no cluster profile [b] (profiles: a)");
  EXPECT_EQ(bad("default = \"b\"\n[a]\n", ""), f + ": no cluster profile [b] (profiles: a)");
  EXPECT_EQ(bad("nodes = 2\n", ""), f + ":1:1: nodes: expected a table [nodes] of settings or `default = \"name\"`");
  EXPECT_EQ(bad("[a\n", "a").substr(0, f.size() + 6), f + ":1:3: ");
}

BatchJob job_for_script() {
  BatchJob job;
  job.allocation = defaults();
  job.allocation.daenr = "/opt/daenr/bin/daenr";
  job.spec = "/home/ana/my sweeps/t2.toml";  // a space: the script must quote it
  job.db = "/scratch/ana/it's.sqlite";       // and a quote
  job.log_dir = "/scratch/ana/it's.sqlite.slurm";
  job.sweep_name = "table 2";
  return job;
}

TEST(SlurmScript, AsksForRequeueAndTheWarningSignalAndQuotesPaths) {
  BatchJob job = job_for_script();
  job.allocation.time = "2:00:00";
  job.allocation.partition = "gpu";
  job.allocation.gpus_per_node = 2;
  job.allocation.ntasks_per_node = 3;
  job.allocation.grace_s = 300;
  job.allocation.setup = {"module load openmpi/4.1"};
  job.allocation.sbatch = {"--qos=long"};
  job.ranks_per_job = 2;
  const std::string s = render_script(job);
  auto has = [&](const std::string& line) { return s.find(line + "\n") != std::string::npos; };
  EXPECT_EQ(s.rfind("#!/bin/bash\n", 0), 0u);
  EXPECT_TRUE(has("#SBATCH --job-name=daenr-table_2"));
  EXPECT_TRUE(has("#SBATCH --ntasks-per-node=3"));
  EXPECT_TRUE(has("#SBATCH --gpus-per-node=2"));
  EXPECT_TRUE(has("#SBATCH --time=2:00:00"));
  EXPECT_TRUE(has("#SBATCH --partition=gpu"));
  EXPECT_FALSE(s.find("--account") != std::string::npos);  // unset: not asked for
  EXPECT_TRUE(has("#SBATCH --requeue"));
  EXPECT_TRUE(has("#SBATCH --signal=B:USR2@300"));
  EXPECT_TRUE(has("#SBATCH --qos=long"));
  EXPECT_TRUE(has("#SBATCH --output=/scratch/ana/it's.sqlite.slurm/%x-%j.out"));
  EXPECT_TRUE(has("module load openmpi/4.1"));
  EXPECT_TRUE(has("spec='/home/ana/my sweeps/t2.toml'"));
  EXPECT_TRUE(has("db='/scratch/ana/it'\\''s.sqlite'"));
  EXPECT_TRUE(
      has("srun --mpi=pmix --cpus-per-task=\"${SLURM_CPUS_PER_TASK:-1}\" --kill-on-bad-exit=1 "
          "\"$daenr\" sweep run \"$spec\" --db \"$db\" "
          "--max-attempts 2 --grace-signal USR2 --ranks-per-job 2 &"));
  EXPECT_TRUE(has("trap 'on_signal USR2' USR2"));
  EXPECT_TRUE(has("    if [ \"$signal\" = USR2 ]; then"));
  EXPECT_TRUE(has("      requeue \"the time-limit warning (USR2)\""));
  EXPECT_EQ(s.find("USR1"), std::string::npos);  // nothing left over from the old signal
  EXPECT_EQ(s.find("@SIG@"), std::string::npos);
  EXPECT_EQ(s.find("--jobs-per-gpu"), std::string::npos);  // the spec's, read by the run
  EXPECT_TRUE(has("  scontrol requeue \"$SLURM_JOB_ID\""));  // tests/cli/slurm_script.sh runs it
  // Every #SBATCH line comes before the first command, or sbatch ignores it.
  EXPECT_LT(s.rfind("#SBATCH"), s.find("set -u"));

  job.allocation.launcher = "mpirun";
  EXPECT_NE(render_script(job).find("\nmpirun \"$daenr\" sweep run"), std::string::npos);
  // A rank's several CPUs: Open MPI's binding of 2 or fewer ranks to a core each is turned off.
  job.allocation.cpus_per_task = 4;
  EXPECT_NE(render_script(job).find("\nmpirun --bind-to none \"$daenr\" sweep run"),
            std::string::npos);
}

TEST(SlurmScript, TheChosenGraceSignalIsAskedForTrappedForwardedAndRequeuedOn) {
  for (const std::string sig : {"USR1", "ALRM"}) {
    BatchJob job = job_for_script();
    job.allocation.grace_signal = sig;
    job.jobs_per_gpu = 4;
    const std::string s = render_script(job);
    auto has = [&](const std::string& line) { return s.find(line + "\n") != std::string::npos; };
    EXPECT_TRUE(has("#SBATCH --signal=B:" + sig + "@120")) << sig;
    EXPECT_TRUE(has("trap 'on_signal " + sig + "' " + sig)) << sig;
    EXPECT_TRUE(has("    if [ \"$signal\" = " + sig + " ]; then")) << sig;
    EXPECT_TRUE(has("      requeue \"the time-limit warning (" + sig + ")\"")) << sig;
    EXPECT_TRUE(
        has("srun --mpi=pmix --cpus-per-task=\"${SLURM_CPUS_PER_TASK:-1}\" --kill-on-bad-exit=1 "
            "\"$daenr\" sweep run \"$spec\" --db \"$db\" "
            "--max-attempts 2 --grace-signal " +
            sig + " --jobs-per-gpu 4 &"))
        << sig;
    EXPECT_EQ(s.find("USR2"), std::string::npos) << sig;
  }
}

TEST(SlurmGraceSignal, AcceptsTheForwardedCatchableSignalsAndNamesTheFlagOtherwise) {
  EXPECT_EQ(parse_grace_signal("USR2", "--grace-signal"), "USR2");
  EXPECT_EQ(parse_grace_signal("SIGUSR1", "--grace-signal"), "USR1");
  EXPECT_EQ(parse_grace_signal("alrm", "--grace-signal"), "ALRM");
  EXPECT_EQ(grace_signal_number("USR2"), SIGUSR2);
  EXPECT_EQ(grace_signal_number("USR1"), SIGUSR1);
  EXPECT_EQ(grace_signal_number("ALRM"), SIGALRM);
  EXPECT_EQ(error_of<SlurmError>([] { parse_grace_signal("SIGKILL", "--grace-signal"); }),
            "--grace-signal 'SIGKILL': cannot be caught, so the run could not checkpoint; use USR2 (the default), "
            "USR1 or ALRM");
  EXPECT_EQ(error_of<SlurmError>([] { parse_grace_signal("STOP", "--grace-signal"); }).substr(0, 39),
            "--grace-signal 'STOP': cannot be caught");
  // TERM is Slurm's own stop, which the script tells apart from the warning; HUP is not forwarded by mpirun.
  for (const std::string other : {"TERM", "HUP", "INT", "URG", "12", ""}) {
    EXPECT_EQ(error_of<SlurmError>([&] { parse_grace_signal(other, "--grace-signal"); }),
              "--grace-signal '" + other + "': not a grace signal daenr handles; use USR2 (the default), USR1 or ALRM");
  }
}

// A spec whose jobs are those of tests/data/kill-sweep.toml, with `top` added at its top.
std::filesystem::path spec_with(const TempDir& dir, const std::string& top) {
  std::ifstream in(std::filesystem::path(DAENR_SOURCE_DIR) / "tests/data/kill-sweep.toml");
  std::stringstream text;
  text << top << in.rdbuf();
  const auto path = dir.path() / "spec.toml";
  std::ofstream(path) << text.str();
  return path;
}

// A dry run of spec_with(dir, "") under the profile `cluster` of a profiles file with `profiles`.
SubmitRequest dry_run_under(const TempDir& dir, const std::string& profiles,
                            const std::string& cluster) {
  const auto file = dir.path() / "clusters.toml";
  std::ofstream(file) << profiles;
  SubmitRequest r;
  r.spec = spec_with(dir, "");
  r.db = dir.path() / "x.sqlite";
  r.profile_file = file;
  r.cluster = cluster;
  r.dry_run = true;
  return r;
}

TEST(SlurmSubmit, JobsPerGpuSetsTheTasksPerNodeAndIsPassedToTheRun) {
  TempDir dir;
  auto r = dry_run_under(dir,
                         "[gpu]\ngpus_per_node = 2\njobs_per_gpu = 3\n[fixed]\ngpus_per_node = 2\n"
                         "ntasks_per_node = 9\n",
                         "gpu");
  auto script = [&] { return submit(r).script; };
  auto has = [](const std::string& s, const std::string& line) { return s.find(line + "\n") != std::string::npos; };
  // The profile's 3 per GPU: rank 0 + 2 GPUs x 3 on one node, and the run is told.
  std::string s = script();
  EXPECT_TRUE(has(s, "#SBATCH --ntasks-per-node=7")) << s;
  EXPECT_TRUE(has(s, "#SBATCH --gpus-per-node=2"));
  EXPECT_NE(s.find(" --jobs-per-gpu 3 &\n"), std::string::npos);
  // On two nodes rank 0 takes one of node 0's slots, so no GPU gets more than 3.
  r.command_line.nodes = 2;
  EXPECT_TRUE(has(script(), "#SBATCH --ntasks-per-node=6"));
  r.command_line.nodes.reset();
  // The flag wins over the spec, which wins over the profile; the spec's is not passed on.
  r.spec = spec_with(dir, "jobs_per_gpu = 2\n");
  s = script();
  EXPECT_TRUE(has(s, "#SBATCH --ntasks-per-node=5"));
  EXPECT_EQ(s.find("--jobs-per-gpu"), std::string::npos);
  r.command_line.jobs_per_gpu = 4;
  s = script();
  EXPECT_TRUE(has(s, "#SBATCH --ntasks-per-node=9"));
  EXPECT_NE(s.find(" --jobs-per-gpu 4 &\n"), std::string::npos);
  // Tasks per node given: kept when they fit, refused when GPUs would take more than k each.
  r.cluster = "fixed";
  EXPECT_TRUE(has(script(), "#SBATCH --ntasks-per-node=9"));
  r.command_line.jobs_per_gpu = 3;
  EXPECT_EQ(error_of<SlurmError>([&] { submit(r); }),
            "--jobs-per-gpu 3: 9 tasks per node are more than 2 GPUs x 3 jobs per GPU + 1 (rank 0) = 7; raise "
            "jobs_per_gpu or lower ntasks_per_node");
  // Without jobs_per_gpu anywhere, tasks per node stay as they were (1 by default).
  r.spec = spec_with(dir, "");
  r.cluster.clear();
  r.profile_file = dir.path() / "none.toml";
  r.command_line = {};
  r.command_line.gpus_per_node = 4;
  s = script();
  EXPECT_TRUE(has(s, "#SBATCH --ntasks-per-node=1"));
  EXPECT_EQ(s.find("--jobs-per-gpu"), std::string::npos);
  // A bad --grace-signal is named as the flag.
  r.command_line.grace_signal = "KILL";
  EXPECT_EQ(error_of<SlurmError>([&] { submit(r); }).substr(0, 42), "--grace-signal 'KILL': cannot be caught, s");
  r.command_line.grace_signal = "sigalrm";
  EXPECT_TRUE(has(script(), "#SBATCH --signal=B:ALRM@120"));
}

TEST(SlurmSubmit, GraceSignalComesFromTheFlagElseTheSpecElseTheProfile) {
  TempDir dir;
  auto r = dry_run_under(dir, "[c]\ngrace_signal = \"USR1\"\n", "c");
  auto signal_of = [&] {
    const auto s = submit(r).script;
    const auto at = s.find("#SBATCH --signal=B:");
    return at == std::string::npos ? std::string() : s.substr(at + 19, s.find('@', at) - at - 19);
  };
  EXPECT_EQ(signal_of(), "USR1");  // the profile's
  r.spec = spec_with(dir, "grace_signal = \"ALRM\"\n");
  EXPECT_EQ(signal_of(), "ALRM");  // the spec's over the profile's
  EXPECT_NE(submit(r).script.find("--grace-signal ALRM &"),
            std::string::npos);  // and the run is told
  r.command_line.grace_signal = "usr2";
  EXPECT_EQ(signal_of(), "USR2");  // the flag's over both
  r.command_line.grace_signal.reset();
  r.cluster.clear();
  r.profile_file = dir.path() / "none.toml";
  r.spec = spec_with(dir, "");
  EXPECT_EQ(signal_of(), "USR2");  // none anywhere: the default
}

TEST(SlurmScript, IsValidBash) {
  TempDir dir;
  const auto path = dir.path() / "job.sbatch";
  std::ofstream(path) << render_script(job_for_script());
  const auto r = run_command({"bash", "-n", path.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(SlurmCommand, CapturesOutputErrorsExitCodeAndInput) {
  const auto r = run_command({"sh", "-c", "cat; echo out; echo err >&2; exit 3"}, "from stdin\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "from stdin\nout\n");
  EXPECT_EQ(r.err, "err\n");
  // Output larger than a pipe's buffer on both streams does not deadlock.
  const auto big = run_command({"sh", "-c", "head -c 200000 /dev/zero; head -c 200000 /dev/zero >&2"});
  EXPECT_EQ(big.out.size(), 200000u);
  EXPECT_EQ(big.err.size(), 200000u);
  EXPECT_EQ(run_command({"sh", "-c", "kill -TERM $$"}).exit_code, 128 + 15);
  EXPECT_EQ(error_of<SlurmError>([] { run_command({"no-such-program-daenr"}); }),
            "no-such-program-daenr: cannot run it (No such file or directory); is Slurm installed and on PATH?");
}

TEST(OwnerName, ParsesWhatProcessOwnerWrites) {
  auto o = orchestrator::parse_owner("node7:4242");
  EXPECT_EQ(o.host, "node7");
  EXPECT_EQ(o.pid, 4242);
  EXPECT_EQ(o.slurm_job, "");
  o = orchestrator::parse_owner("node7:4242 (slurm job 123)");
  EXPECT_EQ(o.host, "node7");
  EXPECT_EQ(o.pid, 4242);
  EXPECT_EQ(o.slurm_job, "123");
  EXPECT_EQ(orchestrator::parse_owner("node7:42x").pid, 0);  // not ours: never judged dead
  EXPECT_EQ(orchestrator::parse_owner("nonsense").host, "");

  ::setenv("SLURM_JOB_ID", "987", 1);
  ::setenv("SLURM_RESTART_COUNT", "3", 1);
  const auto me = orchestrator::parse_owner(orchestrator::process_owner());
  EXPECT_EQ(me.slurm_job, "987");
  EXPECT_EQ(me.pid, ::getpid());
  EXPECT_EQ(orchestrator::slurm_context().restart, 3);
  ::unsetenv("SLURM_JOB_ID");
  ::unsetenv("SLURM_RESTART_COUNT");
  EXPECT_EQ(orchestrator::parse_owner(orchestrator::process_owner()).slurm_job, "");
}

}  // namespace
}  // namespace daenr::slurm
