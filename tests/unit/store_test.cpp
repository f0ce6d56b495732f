// The sweep database: schema and migrations, idempotent inserts, the job
// life cycle, leases and the run lock, and refusals that change nothing.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace daenr::storage {
namespace {

using daenr::testing::TempDir;

std::vector<NewJob> jobs(int n, const std::string& prefix = "job") {
  std::vector<NewJob> out;
  for (int i = 0; i < n; ++i) out.push_back({prefix + std::to_string(i), "{\"i\":" + std::to_string(i) + "}", "{}", ""});
  return out;
}

ResultRecord result_for(const std::string& id) {
  ResultRecord r;
  r.job_id = id;
  r.metrics = "{}";
  r.mse = 0.1;
  r.mean_r = 0.4;
  r.n_significant = 2;
  r.neurons = 3;
  r.steps = 10;
  r.r = {0.1, 0.5, 0.9};
  r.p = {0.5, 0.01, 0.001};
  r.curve = {{5, 0, 1e-3, 2.0, 2.5}, {10, 1, 5e-4, 1.5, 2.0}};
  return r;
}

int64_t count(Database& db, const std::string& sql) {
  Statement s(db, sql);
  s.step();
  return s.column_int(0);
}

TEST(Store, CreatesTheSchemaAndReopens) {
  TempDir dir;
  const auto path = dir.path() / "x.sqlite";
  {
    Store store(path);
    const auto sweep = store.insert_sweep("s", "spec text", 1.0);
    EXPECT_EQ(store.insert_jobs(sweep, jobs(3), 1.0), 3);
  }
  Store again(path);
  EXPECT_EQ(count(again.database(), "PRAGMA user_version"), Store::kSchemaVersion);
  EXPECT_EQ(count(again.database(), "SELECT count(*) FROM jobs"), 3);
  Statement mode(again.database(), "PRAGMA journal_mode");
  mode.step();
  EXPECT_EQ(mode.column_text(0), "wal");
}

// Artifacts are recorded absolute; a database moved with its <db>.artifacts/ folder finds its
// files beside it, one job's artifact is one lookup, and a missing file keeps its recorded path
// (so that its reader names it).
TEST(Store, ArtifactsOfAMovedDatabaseAreFoundBesideIt) {
  TempDir dir;
  namespace fs = std::filesystem;
  const auto before = dir.path() / "a" / "x.sqlite";
  fs::create_directories(before.parent_path());
  const auto model = fs::path(before.string() + ".artifacts") / "job0-model.pt";
  {
    Store store(before);
    const auto sweep = store.insert_sweep("s", "spec", 0);
    store.insert_jobs(sweep, jobs(2), 0);
    ASSERT_TRUE(store.lease_next(sweep, "w1", 1, 60, 2));
    auto r = result_for("job0");
    r.artifacts = {{"model", model.string()}, {"reconstructions", "/nowhere/job0-reconstructions.npy"}};
    fs::create_directories(model.parent_path());
    std::ofstream(model) << "weights";
    store.record_result(r, "w1", 2);
  }
  EXPECT_EQ(Reader(before).artifact("job0", "model"), model.string());
  const auto after = dir.path() / "b" / "x.sqlite";
  fs::create_directories(after.parent_path());
  fs::rename(before, after);
  fs::rename(before.string() + ".artifacts", after.string() + ".artifacts");
  for (const char* side : {"-wal", "-shm"}) {
    if (fs::exists(before.string() + side)) fs::rename(before.string() + side, after.string() + side);
  }
  Reader moved(after);
  const auto found = fs::path(after.string() + ".artifacts") / "job0-model.pt";
  EXPECT_EQ(moved.artifact("job0", "model"), found.string());
  ASSERT_EQ(moved.artifacts("model").size(), 1u);
  EXPECT_EQ(moved.artifacts("model")[0], std::make_pair(std::string("job0"), found.string()));
  EXPECT_EQ(moved.artifact("job0", "reconstructions"), "/nowhere/job0-reconstructions.npy");
  EXPECT_EQ(moved.artifact("job1", "model"), std::nullopt);
  EXPECT_EQ(moved.artifact("job0", "mei_images"), std::nullopt);
}

TEST(Store, InsertingASweepTwiceAddsNothing) {
  TempDir dir;
  Store store(dir.path() / "x.sqlite");
  const auto a = store.insert_sweep("s", "spec", 1.0);
  EXPECT_EQ(store.insert_sweep("s", "spec", 2.0), a);
  EXPECT_EQ(store.insert_jobs(a, jobs(4), 1.0), 4);
  EXPECT_EQ(store.insert_jobs(a, jobs(5), 2.0), 1);  // one more value on an axis: one new job
  EXPECT_EQ(count(store.database(), "SELECT count(*) FROM sweep_jobs"), 5);
  EXPECT_EQ(count(store.database(), "SELECT count(*) FROM sweeps"), 1);
  EXPECT_NE(store.insert_sweep("s", "other spec", 1.0), a);
}

TEST(Store, LeaseRecordFailRetryPreempt) {
  TempDir dir;
  Store store(dir.path() / "x.sqlite");
  const auto sweep = store.insert_sweep("s", "spec", 0);
  store.insert_jobs(sweep, jobs(3), 0);
  auto a = store.lease_next(sweep, "w1", 10, 60, 2);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, "job0");
  EXPECT_EQ(a->attempts, 1);
  store.record_result(result_for("job0"), "w1", 11);
  EXPECT_THROW(store.record_result(result_for("job0"), "w1", 12), StorageError);  // never twice
  EXPECT_EQ(count(store.database(), "SELECT count(*) FROM results"), 1);
  EXPECT_EQ(count(store.database(), "SELECT count(*) FROM neuron_results WHERE job_id = 'job0'"), 3);
  EXPECT_EQ(count(store.database(), "SELECT count(*) FROM curves WHERE job_id = 'job0'"), 2);

  auto b = store.lease_next(sweep, "w1", 12, 60, 2);
  ASSERT_EQ(b->id, "job1");
  store.record_failure("job1", "w1", "loss diverged at step 5", 13);
  auto c = store.lease_next(sweep, "w1", 14, 60, 2);
  ASSERT_EQ(c->id, "job2");  // pending before failed
  store.record_preempted("job2", "w1", 15);
  auto d = store.lease_next(sweep, "w1", 16, 60, 2);
  ASSERT_EQ(d->id, "job2");  // preempted first, and not counted as an attempt
  EXPECT_EQ(d->attempts, 1);
  store.record_result(result_for("job2"), "w1", 17);
  auto e = store.lease_next(sweep, "w1", 18, 60, 2);
  ASSERT_EQ(e->id, "job1");  // the failed job's second attempt
  EXPECT_EQ(e->attempts, 2);
  store.record_failure("job1", "w1", "again", 19);
  EXPECT_FALSE(store.lease_next(sweep, "w1", 20, 60, 2));  // attempts exhausted
  Reader reader(dir.path() / "x.sqlite");
  const auto counts = reader.counts(sweep);
  EXPECT_EQ(counts.total, 3);
  EXPECT_EQ(counts.done, 2);
  EXPECT_EQ(counts.failed, 1);
  ASSERT_EQ(reader.last_errors(5).size(), 1u);
  EXPECT_EQ(reader.last_errors(5)[0], std::make_pair(std::string("job1"), std::string("again")));
}

TEST(Store, StaleLeasesAreRequeuedAndTheirResultsRefused) {
  TempDir dir;
  Store store(dir.path() / "x.sqlite");
  const auto sweep = store.insert_sweep("s", "spec", 0);
  store.insert_jobs(sweep, jobs(1), 0);
  ASSERT_TRUE(store.lease_next(sweep, "dead", 0, 30, 3));
  store.heartbeat("dead", 20, 30);  // lease now ends at 50
  EXPECT_EQ(store.reconcile_stale(40), 0);
  EXPECT_EQ(store.reconcile_stale(60), 1);
  auto again = store.lease_next(sweep, "alive", 61, 30, 3);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->attempts, 2);  // the dead run's attempt counted
  EXPECT_THROW(store.record_result(result_for("job0"), "dead", 62), StorageError);
  store.record_result(result_for("job0"), "alive", 62);
}

TEST(Store, DependenciesOrderTheQueue) {
  TempDir dir;
  Store store(dir.path() / "x.sqlite");
  const auto sweep = store.insert_sweep("s", "spec", 0);
  store.insert_jobs(sweep, {{"child", "{}", "{}", "parent"}, {"parent", "{}", "{}", ""}}, 0);
  auto first = store.lease_next(sweep, "w", 1, 60, 1);
  ASSERT_EQ(first->id, "parent");
  EXPECT_FALSE(store.lease_next(sweep, "w", 2, 60, 1));  // child waits for parent
  store.record_result(result_for("parent"), "w", 3);
  EXPECT_EQ(store.lease_next(sweep, "w", 4, 60, 1)->id, "child");
}

TEST(Store, OneRunAtATime) {
  TempDir dir;
  Store a(dir.path() / "x.sqlite");
  Store b(dir.path() / "x.sqlite");
  a.acquire_run_lock("host1:pid 10", 100, 60);
  try {
    b.acquire_run_lock("host2:pid 20", 130, 60);
    FAIL() << "expected LockHeld";
  } catch (const LockHeld& e) {
    EXPECT_EQ(std::string(e.what()), (dir.path() / "x.sqlite").string() +
                                         ": another run is using this database: host1:pid 10 (last "
                                         "heartbeat 30 s ago; taken over after 60 s without one)");
  }
  a.refresh_run_lock("host1:pid 10", 150);
  EXPECT_THROW(b.acquire_run_lock("host2:pid 20", 200, 60), LockHeld);
  b.acquire_run_lock("host2:pid 20", 211, 60);  // a's heartbeat is 61 s old: stale
  EXPECT_THROW(a.refresh_run_lock("host1:pid 10", 212), LockHeld);
  b.release_run_lock("host2:pid 20");
  EXPECT_FALSE(Reader(dir.path() / "x.sqlite").run_lock());
}

// Bytes of a file, to check that a refusal changed nothing.
std::string bytes_of(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Store, RefusesWhatItCannotUseAndChangesNothing) {
  TempDir dir;
  const auto newer = dir.path() / "newer.sqlite";
  {
    Database db(newer, Database::Mode::kCreate);
    db.exec("PRAGMA user_version = 99");
  }
  const auto before = bytes_of(newer);
  try {
    Store s(newer);
    FAIL() << "expected StorageError";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()), newer.string() +
                                         ": written by a newer daenr (schema version 99; this build "
                                         "knows up to 3); nothing was changed");
  }
  EXPECT_EQ(bytes_of(newer), before);

  const auto junk = dir.path() / "notes.txt";
  { std::ofstream(junk) << std::string(2000, 'x'); }
  try {
    Store s(junk);
    FAIL() << "expected StorageError";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()), junk.string() + ": not an SQLite database (file is not a database)");
  }
  EXPECT_EQ(bytes_of(junk), std::string(2000, 'x'));

  const auto nowhere = dir.path() / "missing" / "x.sqlite";
  EXPECT_THROW(Store{nowhere}, StorageError);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "missing"));

  if (::geteuid() != 0) {  // root writes anywhere
    const auto ro = dir.path() / "ro";
    std::filesystem::create_directory(ro);
    ::chmod(ro.c_str(), 0555);
    EXPECT_THROW(Store{ro / "x.sqlite"}, StorageError);
  }
  EXPECT_THROW(Reader{dir.path() / "absent.sqlite"}, StorageError);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "absent.sqlite"));
}

TEST(Store, MigratesAVersionOneDatabaseKeepingItsJobs) {
  TempDir dir;
  const auto path = dir.path() / "v1.sqlite";
  {
    // A version-1 file: today's schema less what versions 2 and 3 added.
    Store store(path);
    const auto sweep = store.insert_sweep("s", "spec", 1.0);
    store.insert_jobs(sweep, jobs(2), 1.0);
    store.database().exec(
        "DROP TABLE slurm_jobs; DROP TABLE runs; ALTER TABLE jobs DROP COLUMN kind; PRAGMA user_version = 1");
  }
  {
    Reader old(path);  // read-only: not migrated, and no Slurm rows
    EXPECT_TRUE(old.slurm_jobs().empty());
    EXPECT_TRUE(old.runs(10).empty());
    EXPECT_EQ(old.counts().total, 2);
  }
  Store store(path);
  EXPECT_EQ(count(store.database(), "PRAGMA user_version"), Store::kSchemaVersion);
  EXPECT_EQ(count(store.database(), "SELECT count(*) FROM jobs"), 2);
  store.record_slurm_job({"4242", "s", "/x/spec.toml", "/x/db.slurm/s.sbatch", 5.0});
  Reader reader(path);
  ASSERT_EQ(reader.slurm_jobs().size(), 1u);
  EXPECT_EQ(reader.slurm_jobs()[0].slurm_job_id, "4242");
}

TEST(Store, MigratesAVersionTwoDatabaseItsJobsTraining) {
  TempDir dir;
  const auto path = dir.path() / "v2.sqlite";
  {
    // A version-2 file: today's schema less the job kinds of version 3, with a finished job.
    Store store(path);
    const auto sweep = store.insert_sweep("s", "spec", 1.0);
    store.insert_jobs(sweep, jobs(2), 1.0);
    const auto leased = store.lease_next(sweep, "me", 2.0, 60, 2);
    ASSERT_TRUE(leased);
    store.record_result(result_for(leased->id), "me", 3.0);
    store.database().exec("ALTER TABLE jobs DROP COLUMN kind; PRAGMA user_version = 2");
  }
  {
    Reader old(path);  // read-only: not migrated; every job of it trains
    const auto rows = old.jobs();
    ASSERT_EQ(rows.size(), 2u);
    for (const auto& row : rows) EXPECT_EQ(row.kind, "train");
    EXPECT_EQ(count(old.database(), "PRAGMA user_version"), 2);
  }
  Store store(path);
  EXPECT_EQ(count(store.database(), "PRAGMA user_version"), 3);
  EXPECT_EQ(count(store.database(), "SELECT count(*) FROM jobs WHERE kind = 'train'"), 2);
  EXPECT_EQ(count(store.database(), "SELECT count(*) FROM results"), 1);
  // A decode job of the finished one can now be added, runs after it, and keeps its kind.
  const auto sweep = store.insert_sweep("s", "spec", 1.0);
  const auto done = store.jobs();
  std::string parent;
  for (const auto& row : done) {
    if (row.state == JobState::kDone) parent = row.id;
  }
  ASSERT_FALSE(parent.empty());
  store.insert_jobs(sweep, {NewJob{"decode1", "{}", "{}", parent, "decode"}}, 4.0);
  Reader reader(path);
  for (const auto& row : reader.jobs()) {
    EXPECT_EQ(row.kind, row.id == "decode1" ? "decode" : "train");
  }
}

TEST(Store, RecordsSlurmJobsAndRuns) {
  TempDir dir;
  const auto path = dir.path() / "x.sqlite";
  Store store(path);
  store.record_slurm_job({"17", "quick", "/a/q.toml", "/a/x.sqlite.slurm/quick-17.sbatch", 3.0});
  store.record_slurm_job({"9", "quick", "/a/q.toml", "/a/x.sqlite.slurm/quick-9.sbatch", 2.0});
  store.record_slurm_job({"17", "quick", "/a/q.toml", "/a/x.sqlite.slurm/quick-17.sbatch", 3.0});  // again
  const auto first = store.begin_run("n1:10 (slurm job 17)", "17", 0, 10.0);
  store.end_run(first, "stopped", 20.0);
  const auto second = store.begin_run("n1:11 (slurm job 17)", "17", 1, 30.0);
  const auto local = store.begin_run("laptop:12", "", 0, 40.0);
  EXPECT_NE(first, second);

  Reader reader(path);
  const auto submitted = reader.slurm_jobs();
  ASSERT_EQ(submitted.size(), 2u);  // one row per Slurm job, oldest first
  EXPECT_EQ(submitted[0].slurm_job_id, "9");
  EXPECT_EQ(submitted[1].slurm_job_id, "17");
  EXPECT_EQ(submitted[1].script_path, "/a/x.sqlite.slurm/quick-17.sbatch");

  const auto runs = reader.runs(10);
  ASSERT_EQ(runs.size(), 3u);  // newest first
  EXPECT_EQ(runs[0].id, local);
  EXPECT_EQ(runs[0].slurm_job_id, "");
  EXPECT_FALSE(runs[0].ended_at.has_value());
  EXPECT_EQ(runs[1].id, second);
  EXPECT_EQ(runs[1].slurm_restart, 1);
  EXPECT_EQ(runs[1].outcome, "");
  EXPECT_EQ(runs[2].outcome, "stopped");
  EXPECT_DOUBLE_EQ(*runs[2].ended_at, 20.0);
  EXPECT_EQ(reader.runs(1).size(), 1u);
}

}  // namespace
}  // namespace daenr::storage
