#include "storage/store.h"

#include <fmt/format.h>

#include <cmath>

#include "job/hash.h"
#include "job/labels.h"

namespace daenr::storage {

namespace fs = std::filesystem;

namespace {

// Version 1 of the schema. A later version adds a step to migrate() and never
// edits this text: databases written by older builds must keep opening.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE sweeps (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  spec        TEXT NOT NULL,
  created_at  REAL NOT NULL
);
CREATE TABLE jobs (
  id           TEXT PRIMARY KEY,
  config       TEXT NOT NULL,
  labels       TEXT NOT NULL DEFAULT '{}',
  depends_on   TEXT,
  state        TEXT NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending', 'leased', 'done', 'failed', 'preempted')),
  attempts     INTEGER NOT NULL DEFAULT 0,
  lease_owner  TEXT,
  lease_expiry REAL,
  created_at   REAL NOT NULL,
  updated_at   REAL NOT NULL,
  started_at   REAL,
  finished_at  REAL,
  last_error   TEXT
);
CREATE INDEX jobs_by_state ON jobs (state);
CREATE TABLE sweep_jobs (
  sweep_id  TEXT NOT NULL REFERENCES sweeps (id),
  job_id    TEXT NOT NULL REFERENCES jobs (id),
  PRIMARY KEY (sweep_id, job_id)
) WITHOUT ROWID;
CREATE TABLE results (
  job_id        TEXT PRIMARY KEY REFERENCES jobs (id),
  metrics       TEXT NOT NULL,
  mse           REAL,
  psnr          REAL,
  ssim          REAL,
  mean_r        REAL,
  n_significant INTEGER,
  neurons       INTEGER NOT NULL,
  steps         INTEGER NOT NULL,
  recorded_at   REAL NOT NULL
);
CREATE TABLE neuron_results (
  job_id  TEXT NOT NULL REFERENCES jobs (id),
  neuron  INTEGER NOT NULL,
  r       REAL NOT NULL,
  p       REAL NOT NULL,
  PRIMARY KEY (job_id, neuron)
) WITHOUT ROWID;
CREATE TABLE curves (
  job_id        TEXT NOT NULL REFERENCES jobs (id),
  step          INTEGER NOT NULL,
  phase         INTEGER NOT NULL,
  learning_rate REAL NOT NULL,
  train_loss    REAL NOT NULL,
  val_loss      REAL NOT NULL,
  PRIMARY KEY (job_id, step)
) WITHOUT ROWID;
CREATE TABLE artifacts (
  job_id  TEXT NOT NULL REFERENCES jobs (id),
  kind    TEXT NOT NULL,
  path    TEXT NOT NULL,
  PRIMARY KEY (job_id, kind)
) WITHOUT ROWID;
CREATE TABLE run_lock (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  owner        TEXT NOT NULL,
  acquired_at  REAL NOT NULL,
  heartbeat_at REAL NOT NULL
);
)sql";

// Version 2: the Slurm allocations submitted for a database, and every run
// that drove it (in or out of Slurm), so that status can name them and a
// requeued allocation can be told from a second one.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE slurm_jobs (
  slurm_job_id TEXT PRIMARY KEY,
  sweep_name   TEXT NOT NULL,
  spec_path    TEXT NOT NULL,
  script_path  TEXT NOT NULL,
  submitted_at REAL NOT NULL
);
CREATE TABLE runs (
  id            INTEGER PRIMARY KEY,
  owner         TEXT NOT NULL,
  slurm_job_id  TEXT,
  slurm_restart INTEGER,
  started_at    REAL NOT NULL,
  ended_at      REAL,
  outcome       TEXT
);
)sql";

// Version 3: the job kinds (job/kind.h). A decode or mei job works on a finished training job
// (its depends_on); every job of an older database is a training job.
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'train';
)sql";

// The first read of a file: one that is not SQLite fails here, before any write.
int user_version(Database& db) {
  try {
    Statement s(db, "PRAGMA user_version");
    s.step();
    return static_cast<int>(s.column_int(0));
  } catch (const StorageError&) {
    throw StorageError(fmt::format("{}: not an SQLite database ({})", db.path().string(),
                                   sqlite3_errmsg(db.handle())));
  }
}

// Opening for writing: the folder must exist and the file, if present, must
// be a database of a schema this build knows. Checked before anything is
// written, so that a bad path or file is left exactly as it was.
Database open_for_writing(const fs::path& path) {
  const auto dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  if (!fs::is_directory(dir)) {
    throw StorageError(fmt::format("{}: folder {} does not exist", path.string(), dir.string()));
  }
  Database db(path, fs::exists(path) ? Database::Mode::kReadWrite : Database::Mode::kCreate);
  return db;
}

}  // namespace

std::string to_string(JobState state) {
  switch (state) {
    case JobState::kPending: return "pending";
    case JobState::kLeased: return "leased";
    case JobState::kDone: return "done";
    case JobState::kFailed: return "failed";
    case JobState::kPreempted: return "preempted";
  }
  return "?";
}

JobState parse_job_state(const std::string& text) {
  for (auto s : {JobState::kPending, JobState::kLeased, JobState::kDone, JobState::kFailed,
                 JobState::kPreempted}) {
    if (to_string(s) == text) return s;
  }
  throw StorageError(fmt::format("unknown job state '{}'", text));
}

Store::Store(const fs::path& path) : Queries(file_), file_(open_for_writing(path)) {
  // Reading the version is the first access: a file that is not SQLite fails
  // here, before any write.
  const int version = user_version(db_);
  if (version > kSchemaVersion) {
    throw StorageError(fmt::format("{}: written by a newer daenr (schema version {}; this build "
                                   "knows up to {}); nothing was changed",
                                   path.string(), version, kSchemaVersion));
  }
  // WAL lets readers (status, reports) run beside the writer; NORMAL
  // synchronous is durable across a crash of this process (the sweep's
  // threat: SIGKILL, preemption), and every transaction is atomic.
  db_.exec("PRAGMA journal_mode = WAL");
  db_.exec("PRAGMA synchronous = NORMAL");
  db_.exec("PRAGMA foreign_keys = ON");
  migrate();
}

void Store::migrate() {
  const int version = user_version(db_);
  if (version == kSchemaVersion) return;
  Transaction tx(db_);
  if (version < 1) db_.exec(kSchemaV1);
  if (version < 2) db_.exec(kSchemaV2);
  if (version < 3) db_.exec(kSchemaV3);
  db_.exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion));
  tx.commit();
}

Statement& Store::cached(const std::string& sql) {
  auto& slot = statements_[sql];
  if (!slot) slot = std::make_unique<Statement>(db_, sql);
  slot->reset();
  return *slot;
}

std::string Store::insert_sweep(const std::string& name, const std::string& spec_text, double now) {
  const std::string id = job::sha256_hex(spec_text).substr(0, 20);
  Statement s(db_, "INSERT OR IGNORE INTO sweeps (id, name, spec, created_at) VALUES (:id, :name, :spec, :now)");
  s.bind(":id", id).bind(":name", name).bind(":spec", spec_text).bind(":now", now).run();
  return id;
}

int64_t Store::insert_jobs(const std::string& sweep_id, const std::vector<NewJob>& jobs, double now) {
  Transaction tx(db_);
  Statement job(db_,
                "INSERT OR IGNORE INTO jobs (id, config, labels, depends_on, kind, created_at, updated_at) "
                "VALUES (:id, :config, :labels, :dep, :kind, :now, :now)");
  Statement link(db_, "INSERT OR IGNORE INTO sweep_jobs (sweep_id, job_id) VALUES (:sweep, :job)");
  int64_t added = 0;
  for (const auto& j : jobs) {
    job.bind(":id", j.id).bind(":config", j.config).bind(":labels", j.labels.empty() ? "{}" : j.labels);
    if (j.depends_on.empty()) {
      job.bind_null(":dep");
    } else {
      job.bind(":dep", j.depends_on);
    }
    job.bind(":kind", j.kind).bind(":now", now).run();
    added += db_.changes();
    link.bind(":sweep", sweep_id).bind(":job", j.id).run();
  }
  tx.commit();
  return added;
}

std::optional<LeasedJob> Store::lease_next(const std::string& sweep_id, const std::string& owner,
                                           double now, double lease_s, int max_attempts) {
  Transaction tx(db_);
  // One indexed probe per state, in priority order; rowid order (insertion,
  // i.e. expansion order) within a state. The sweep and dependency checks are
  // primary-key lookups, so a lease costs O(log n) however many jobs are done.
  static constexpr const char* kCandidates[] = {
      "SELECT id, config, depends_on, attempts FROM jobs j WHERE state = 'preempted'",
      "SELECT id, config, depends_on, attempts FROM jobs j WHERE state = 'pending'",
      "SELECT id, config, depends_on, attempts FROM jobs j WHERE state = 'failed' AND attempts < :max"};
  std::optional<LeasedJob> leased;
  for (const char* base : kCandidates) {
    Statement& s = cached(fmt::format(
                         "{} AND EXISTS (SELECT 1 FROM sweep_jobs WHERE sweep_id = :sweep AND job_id = j.id)"
                         " AND (depends_on IS NULL OR EXISTS (SELECT 1 FROM jobs d WHERE d.id = j.depends_on"
                         " AND d.state = 'done')) ORDER BY rowid LIMIT 1",
                         base));
    s.bind(":sweep", sweep_id);
    if (std::string_view(base).find(":max") != std::string_view::npos) s.bind(":max", max_attempts);
    if (s.step()) {
      leased = LeasedJob{s.column_text(0), s.column_text(1), s.column_text(2),
                         static_cast<int>(s.column_int(3)) + 1};
      s.reset();
      break;
    }
  }
  if (!leased) return std::nullopt;
  Statement& u = cached(
              "UPDATE jobs SET state = 'leased', lease_owner = :owner, lease_expiry = :expiry, "
              "attempts = attempts + 1, started_at = :now, updated_at = :now WHERE id = :id");
  u.bind(":owner", owner).bind(":expiry", now + lease_s).bind(":now", now).bind(":id", leased->id).run();
  tx.commit();
  return leased;
}

void Store::heartbeat(const std::string& owner, double now, double lease_s) {
  Statement s(db_, "UPDATE jobs SET lease_expiry = :expiry WHERE state = 'leased' AND lease_owner = :owner");
  s.bind(":expiry", now + lease_s).bind(":owner", owner).run();
}

namespace {

// The job must be leased by `owner`: a result from a run that lost its lease
// (taken over as stale) must not be recorded twice.
void require_lease(Database& db, const std::string& job_id, const std::string& owner) {
  Statement s(db, "SELECT state, lease_owner FROM jobs WHERE id = :id");
  s.bind(":id", job_id);
  if (!s.step()) throw StorageError(fmt::format("{}: no job {}", db.path().string(), job_id));
  if (s.column_text(0) != "leased" || s.column_text(1) != owner) {
    throw StorageError(fmt::format("{}: job {} is {} (lease owner '{}'), not leased by '{}'",
                                   db.path().string(), job_id, s.column_text(0), s.column_text(1), owner));
  }
}

}  // namespace

void Store::record_result(const ResultRecord& r, const std::string& owner, double now) {
  if (r.r.size() != r.p.size()) {
    throw StorageError(fmt::format("job {}: {} r values but {} p values", r.job_id, r.r.size(), r.p.size()));
  }
  Transaction tx(db_);
  require_lease(db_, r.job_id, owner);
  Statement& res = cached(
                "INSERT INTO results (job_id, metrics, mse, psnr, ssim, mean_r, n_significant, neurons, "
                "steps, recorded_at) VALUES (:job, :metrics, :mse, :psnr, :ssim, :mean_r, :nsig, "
                ":neurons, :steps, :now)");
  // Non-finite values (PSNR of a perfect reconstruction) are stored as NULL in
  // the numeric columns; the JSON keeps what the job reported.
  auto finite = [](const std::optional<double>& v) {
    return v && std::isfinite(*v) ? v : std::optional<double>{};
  };
  res.bind(":job", r.job_id).bind(":metrics", r.metrics).bind(":mse", finite(r.mse))
      .bind(":psnr", finite(r.psnr)).bind(":ssim", finite(r.ssim)).bind(":mean_r", finite(r.mean_r))
      .bind(":nsig", r.n_significant).bind(":neurons", r.neurons).bind(":steps", r.steps)
      .bind(":now", now).run();
  Statement& neuron = cached("INSERT INTO neuron_results (job_id, neuron, r, p) VALUES (:job, :n, :r, :p)");
  for (std::size_t n = 0; n < r.r.size(); ++n) {
    neuron.bind(":job", r.job_id).bind(":n", static_cast<int64_t>(n)).bind(":r", r.r[n]).bind(":p", r.p[n]).run();
  }
  Statement& curve = cached(
                  "INSERT INTO curves (job_id, step, phase, learning_rate, train_loss, val_loss) "
                  "VALUES (:job, :step, :phase, :lr, :train, :val)");
  for (const auto& c : r.curve) {
    curve.bind(":job", r.job_id).bind(":step", c.step).bind(":phase", c.phase)
        .bind(":lr", c.learning_rate).bind(":train", c.train_loss).bind(":val", c.val_loss).run();
  }
  Statement& artifact =
      cached("INSERT OR REPLACE INTO artifacts (job_id, kind, path) VALUES (:job, :kind, :path)");
  for (const auto& a : r.artifacts) artifact.bind(":job", r.job_id).bind(":kind", a.kind).bind(":path", a.path).run();
  Statement& u = cached(
              "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expiry = NULL, "
              "finished_at = :now, updated_at = :now, last_error = NULL WHERE id = :id");
  u.bind(":now", now).bind(":id", r.job_id).run();
  tx.commit();
}

void Store::record_failure(const std::string& job_id, const std::string& owner,
                           const std::string& error, double now) {
  Transaction tx(db_);
  require_lease(db_, job_id, owner);
  Statement u(db_,
              "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_expiry = NULL, "
              "last_error = :error, finished_at = :now, updated_at = :now WHERE id = :id");
  u.bind(":error", error).bind(":now", now).bind(":id", job_id).run();
  tx.commit();
}

void Store::record_preempted(const std::string& job_id, const std::string& owner, double now) {
  Transaction tx(db_);
  require_lease(db_, job_id, owner);
  Statement u(db_,
              "UPDATE jobs SET state = 'preempted', lease_owner = NULL, lease_expiry = NULL, "
              "attempts = attempts - 1, updated_at = :now WHERE id = :id");
  u.bind(":now", now).bind(":id", job_id).run();
  tx.commit();
}

int64_t Store::reconcile_stale(double now) {
  Statement u(db_,
              "UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expiry = NULL, "
              "updated_at = :now WHERE state = 'leased' AND lease_expiry < :now");
  u.bind(":now", now).run();
  return db_.changes();
}

void Store::acquire_run_lock(const std::string& owner, double now, double stale_s) {
  Transaction tx(db_);
  if (const auto lock = run_lock(); lock && lock->owner != owner && lock->fresh(now, stale_s)) {
    throw LockHeld(fmt::format("{}: {}", db_.path().string(),
                               lock->held_by(now, fmt::format("; taken over after {:.0f} s without one", stale_s))));
  }
  Statement w(db_,
              "INSERT INTO run_lock (id, owner, acquired_at, heartbeat_at) VALUES (1, :owner, :now, :now) "
              "ON CONFLICT (id) DO UPDATE SET owner = :owner, acquired_at = :now, heartbeat_at = :now");
  w.bind(":owner", owner).bind(":now", now).run();
  tx.commit();
}

void Store::refresh_run_lock(const std::string& owner, double now) {
  Statement w(db_, "UPDATE run_lock SET heartbeat_at = :now WHERE id = 1 AND owner = :owner");
  w.bind(":now", now).bind(":owner", owner).run();
  if (db_.changes() != 1) {
    throw LockHeld(fmt::format("{}: the run lock was taken over by another run", db_.path().string()));
  }
}

void Store::release_run_lock(const std::string& owner) {
  Statement w(db_, "DELETE FROM run_lock WHERE id = 1 AND owner = :owner");
  w.bind(":owner", owner).run();
}

void Store::record_slurm_job(const SlurmJobRecord& job) {
  Statement w(db_,
              "INSERT OR REPLACE INTO slurm_jobs (slurm_job_id, sweep_name, spec_path, script_path, "
              "submitted_at) VALUES (:id, :name, :spec, :script, :at)");
  w.bind(":id", job.slurm_job_id).bind(":name", job.sweep_name).bind(":spec", job.spec_path)
      .bind(":script", job.script_path).bind(":at", job.submitted_at).run();
}

int64_t Store::begin_run(const std::string& owner, const std::string& slurm_job_id, int slurm_restart,
                         double now) {
  Statement w(db_,
              "INSERT INTO runs (owner, slurm_job_id, slurm_restart, started_at) "
              "VALUES (:owner, :job, :restart, :now)");
  w.bind(":owner", owner).bind(":now", now);
  if (slurm_job_id.empty()) {
    w.bind_null(":job").bind_null(":restart");
  } else {
    w.bind(":job", slurm_job_id).bind(":restart", static_cast<int64_t>(slurm_restart));
  }
  w.run();
  return db_.last_insert_rowid();
}

void Store::end_run(int64_t run_id, const std::string& outcome, double now) {
  Statement w(db_, "UPDATE runs SET ended_at = :now, outcome = :outcome WHERE id = :id");
  w.bind(":now", now).bind(":outcome", outcome).bind(":id", run_id).run();
}

void Store::add_artifact(const std::string& job_id, const std::string& kind, const std::string& path) {
  Statement w(db_, "INSERT OR REPLACE INTO artifacts (job_id, kind, path) VALUES (:job, :kind, :path)");
  w.bind(":job", job_id).bind(":kind", kind).bind(":path", path).run();
}

Reader::Reader(const fs::path& path)
    : Queries(file_), file_([&] {
        if (!fs::exists(path)) throw StorageError(fmt::format("{}: no such database", path.string()));
        return Database(path, Database::Mode::kReadOnly);
      }()) {
  const int version = user_version(db_);
  if (version > Store::kSchemaVersion) {
    throw StorageError(fmt::format("{}: written by a newer daenr (schema version {}; this build "
                                   "knows up to {})",
                                   path.string(), version, Store::kSchemaVersion));
  }
  if (version < 1) throw StorageError(fmt::format("{}: not a daenr database", path.string()));
}

StateCounts Queries::counts(const std::string& sweep_id) {
  Statement s(db_, sweep_id.empty()
                       ? "SELECT state, count(*) FROM jobs GROUP BY state"
                       : "SELECT j.state, count(*) FROM jobs j JOIN sweep_jobs s ON s.job_id = j.id "
                         "WHERE s.sweep_id = :sweep GROUP BY j.state");
  if (!sweep_id.empty()) s.bind(":sweep", sweep_id);
  StateCounts c;
  while (s.step()) {
    const int64_t n = s.column_int(1);
    c.total += n;
    switch (parse_job_state(s.column_text(0))) {
      case JobState::kPending: c.pending = n; break;
      case JobState::kLeased: c.leased = n; break;
      case JobState::kDone: c.done = n; break;
      case JobState::kFailed: c.failed = n; break;
      case JobState::kPreempted: c.preempted = n; break;
    }
  }
  return c;
}

std::vector<std::pair<std::string, std::string>> Queries::last_errors(int limit) {
  Statement s(db_,
              "SELECT id, last_error FROM jobs WHERE last_error IS NOT NULL "
              "ORDER BY updated_at DESC, id LIMIT :limit");
  s.bind(":limit", limit);
  std::vector<std::pair<std::string, std::string>> out;
  while (s.step()) out.emplace_back(s.column_text(0), s.column_text(1));
  return out;
}

std::optional<RunLock> Queries::run_lock() {
  Statement s(db_, "SELECT owner, acquired_at, heartbeat_at FROM run_lock WHERE id = 1");
  if (!s.step()) return std::nullopt;
  return RunLock{s.column_text(0), s.column_double(1), s.column_double(2)};
}

std::string RunLock::held_by(double now, const std::string& more) const {
  return fmt::format("another run is using this database: {} (last heartbeat {:.0f} s ago{})", owner,
                     now - heartbeat_at, more);
}

namespace {

bool has_table(Database& db, const char* name) {
  Statement s(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name");
  s.bind(":name", name);
  return s.step();
}

bool has_column(Database& db, const char* table, const char* column) {
  Statement s(db, "SELECT 1 FROM pragma_table_info(:table) WHERE name = :column");
  s.bind(":table", table).bind(":column", column);
  return s.step();
}

}  // namespace

std::vector<SlurmJobRecord> Queries::slurm_jobs() {
  // A version-1 file opened read-only is not migrated: it has none.
  if (!has_table(db_, "slurm_jobs")) return {};
  Statement s(db_,
              "SELECT slurm_job_id, sweep_name, spec_path, script_path, submitted_at FROM slurm_jobs "
              "ORDER BY submitted_at, slurm_job_id");
  std::vector<SlurmJobRecord> out;
  while (s.step()) {
    out.push_back({s.column_text(0), s.column_text(1), s.column_text(2), s.column_text(3), s.column_double(4)});
  }
  return out;
}

std::vector<RunRecord> Queries::runs(int limit) {
  if (!has_table(db_, "runs")) return {};
  Statement s(db_,
              "SELECT id, owner, slurm_job_id, slurm_restart, started_at, ended_at, outcome FROM runs "
              "ORDER BY id DESC LIMIT :limit");
  s.bind(":limit", limit);
  std::vector<RunRecord> out;
  while (s.step()) {
    RunRecord r;
    r.id = s.column_int(0);
    r.owner = s.column_text(1);
    if (!s.column_is_null(2)) r.slurm_job_id = s.column_text(2);
    r.slurm_restart = static_cast<int>(s.column_int(3));
    r.started_at = s.column_double(4);
    r.ended_at = s.column_optional_double(5);
    if (!s.column_is_null(6)) r.outcome = s.column_text(6);
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<JobState> Queries::job_state(const std::string& job_id) {
  Statement s(db_, "SELECT state FROM jobs WHERE id = :id");
  s.bind(":id", job_id);
  if (!s.step()) return std::nullopt;
  return parse_job_state(s.column_text(0));
}

std::vector<RunningJob> Queries::running_jobs() {
  Statement s(db_, "SELECT id, labels, started_at FROM jobs WHERE state = 'leased' ORDER BY started_at");
  std::vector<RunningJob> out;
  while (s.step()) out.push_back({s.column_text(0), s.column_text(1), s.column_double(2)});
  return out;
}

int64_t Queries::work_left(const std::string& sweep_id, int max_attempts) {
  Statement s(db_,
              "SELECT count(*) FROM jobs j JOIN sweep_jobs w ON w.job_id = j.id WHERE w.sweep_id = :sweep "
              "AND (j.state IN ('pending', 'leased', 'preempted') OR (j.state = 'failed' AND "
              "j.attempts < :max))");
  s.bind(":sweep", sweep_id).bind(":max", max_attempts);
  s.step();
  return s.column_int(0);
}

std::vector<NeuronResult> Queries::neuron_results(const std::string& job_id) {
  Statement s(db_, "SELECT neuron, r, p FROM neuron_results WHERE job_id = :id ORDER BY neuron");
  s.bind(":id", job_id);
  std::vector<NeuronResult> out;
  while (s.step()) out.push_back({s.column_int(0), s.column_double(1), s.column_double(2)});
  return out;
}

std::vector<SweepRef> Queries::find_sweeps(const std::string& name_or_id) {
  Statement s(db_, "SELECT id, name FROM sweeps WHERE id = :s OR name = :s ORDER BY created_at, id");
  s.bind(":s", name_or_id);
  std::vector<SweepRef> out;
  while (s.step()) out.push_back({s.column_text(0), s.column_text(1)});
  return out;
}

std::vector<JobRow> Queries::jobs(const std::string& sweep_id) {
  // An older file opened read-only (not migrated) has no kind column: all its jobs train.
  const std::string kind = has_column(db_, "jobs", "kind") ? "j.kind" : "'train'";
  Statement s(db_,
              "SELECT j.id, j.labels, j.state, coalesce(j.last_error, ''), r.mse, r.psnr, r.ssim, "
              "r.mean_r, r.n_significant, r.neurons, r.metrics, " + kind + " FROM jobs j LEFT JOIN results r ON "
              "r.job_id = j.id WHERE :sweep = '' OR EXISTS (SELECT 1 FROM sweep_jobs w WHERE "
              "w.sweep_id = :sweep AND w.job_id = j.id)");
  s.bind(":sweep", sweep_id);
  std::vector<JobRow> out;
  while (s.step()) {
    JobRow j;
    j.id = s.column_text(0);
    j.labels = s.column_text(1);
    j.state = parse_job_state(s.column_text(2));
    j.last_error = s.column_text(3);
    j.mse = s.column_optional_double(4);
    j.psnr = s.column_optional_double(5);
    j.ssim = s.column_optional_double(6);
    j.mean_r = s.column_optional_double(7);
    j.n_significant = s.column_optional_int(8);
    j.neurons = s.column_optional_int(9);
    if (!s.column_is_null(10)) j.metrics = s.column_text(10);
    j.kind = s.column_text(11);
    out.push_back(std::move(j));
  }
  return out;
}

std::map<std::string, NeuronCounts> Queries::neuron_counts() {
  // The rule is job::is_significant's; the level is bound, not written twice.
  Statement s(db_,
              "SELECT job_id, count(*), sum(CASE WHEN p <= :level AND r > 0 THEN 1 ELSE 0 END) "
              "FROM neuron_results GROUP BY job_id");
  s.bind(":level", job::kSignificanceLevel);
  std::map<std::string, NeuronCounts> out;
  while (s.step()) out[s.column_text(0)] = {s.column_int(1), s.column_int(2)};
  return out;
}

std::vector<std::pair<std::string, CurveRow>> Queries::curves() {
  Statement s(db_,
              "SELECT job_id, step, phase, learning_rate, train_loss, val_loss FROM curves "
              "ORDER BY job_id, step");
  std::vector<std::pair<std::string, CurveRow>> out;
  while (s.step()) {
    out.emplace_back(s.column_text(0), CurveRow{s.column_int(1), s.column_int(2), s.column_double(3),
                                                s.column_double(4), s.column_double(5)});
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> Queries::artifacts(const std::string& kind) {
  Statement s(db_, "SELECT job_id, path FROM artifacts WHERE kind = :kind");
  s.bind(":kind", kind);
  std::vector<std::pair<std::string, std::string>> out;
  while (s.step()) out.emplace_back(s.column_text(0), resolve_artifact(s.column_text(1)));
  return out;
}

std::optional<std::string> Queries::artifact(const std::string& job_id, const std::string& kind) {
  Statement s(db_, "SELECT path FROM artifacts WHERE job_id = :job AND kind = :kind");
  s.bind(":job", job_id).bind(":kind", kind);
  if (!s.step()) return std::nullopt;
  return resolve_artifact(s.column_text(0));
}

std::string Queries::resolve_artifact(const std::string& recorded) const {
  const fs::path path(recorded);
  std::error_code ec;
  if (fs::exists(path, ec)) return recorded;
  const fs::path moved = fs::path(db_.path().string() + ".artifacts") / path.filename();
  if (fs::exists(moved, ec)) return moved.string();
  return recorded;
}

}  // namespace daenr::storage
