#include "storage/sqlite.h"

#include <fmt/format.h>

namespace daenr::storage {

Database::Database(const std::filesystem::path& path, Mode mode, int busy_timeout_ms) : path_(path) {
  int flags = SQLITE_OPEN_NOMUTEX;
  switch (mode) {
    case Mode::kReadOnly: flags |= SQLITE_OPEN_READONLY; break;
    case Mode::kReadWrite: flags |= SQLITE_OPEN_READWRITE; break;
    case Mode::kCreate: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE; break;
  }
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    // sqlite3_open_v2 allocates a handle even on failure; it carries the message.
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw StorageError(fmt::format("{}: cannot open database (sqlite3_open_v2): {}", path.string(), msg));
  }
  check(sqlite3_extended_result_codes(db_, 1), "sqlite3_extended_result_codes");
  check(sqlite3_busy_timeout(db_, busy_timeout_ms), "sqlite3_busy_timeout");
}

Database::~Database() {
  // sqlite3_close_v2 defers the close until every statement is finalised, so
  // destruction order between a Database and its Statements cannot leak; it returns
  // SQLITE_OK for any valid handle, and a destructor could not report otherwise.
  if (db_) sqlite3_close_v2(db_);
}

Database::Database(Database&& other) noexcept : db_(other.db_), path_(std::move(other.path_)) {
  other.db_ = nullptr;
}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    if (db_) sqlite3_close_v2(db_);
    db_ = other.db_;
    path_ = std::move(other.path_);
    other.db_ = nullptr;
  }
  return *this;
}

void Database::check(int rc, const char* call, std::string_view what) const {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
  // The connection's message belongs to its last call, this one; a call without a
  // connection's error state (or a library misuse) still has its code's text.
  const char* msg = db_ != nullptr && sqlite3_errcode(db_) != SQLITE_OK ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  throw StorageError(fmt::format("{}: {}{}: {}", path_.string(), call,
                                 what.empty() ? std::string() : fmt::format(" '{}'", what.substr(0, 60)), msg));
}

void Database::exec(std::string_view sql) {
  const std::string text(sql);
  check(sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr), "sqlite3_exec", sql);
}

Statement::Statement(const Database& db, std::string_view sql) : db_(&db) {
  db.check(sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                              &stmt_, nullptr),
           "sqlite3_prepare_v3", sql);
}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Statement::Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
  other.stmt_ = nullptr;
}

int Statement::index(const char* name) const {
  const int i = sqlite3_bind_parameter_index(stmt_, name);
  if (i == 0) {
    throw StorageError(fmt::format("{}: no parameter {} in '{}'", db_->path().string(), name,
                                   std::string_view(sqlite3_sql(stmt_)).substr(0, 60)));
  }
  return i;
}

Statement& Statement::bind(const char* name, int64_t value) {
  db_->check(sqlite3_bind_int64(stmt_, index(name), value), "sqlite3_bind_int64", name);
  return *this;
}

Statement& Statement::bind(const char* name, double value) {
  db_->check(sqlite3_bind_double(stmt_, index(name), value), "sqlite3_bind_double", name);
  return *this;
}

Statement& Statement::bind(const char* name, std::string_view value) {
  db_->check(sqlite3_bind_text64(stmt_, index(name), value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
             "sqlite3_bind_text64", name);
  return *this;
}

Statement& Statement::bind_blob(const char* name, const void* data, std::size_t bytes) {
  db_->check(sqlite3_bind_blob64(stmt_, index(name), data, bytes, SQLITE_TRANSIENT), "sqlite3_bind_blob64", name);
  return *this;
}

Statement& Statement::bind_null(const char* name) {
  db_->check(sqlite3_bind_null(stmt_, index(name)), "sqlite3_bind_null", name);
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  try {
    db_->check(rc, "sqlite3_step", sqlite3_sql(stmt_));
  } catch (...) {
    // Ready to run again after the error (sqlite3_reset returns the same error code again).
    sqlite3_reset(stmt_);
    throw;
  }
  return false;
}

void Statement::run() {
  step();
  reset();
}

// sqlite3_reset returns the code of the statement's last step, which step() has checked
// (and thrown) already: nothing new to report here.
void Statement::reset() { sqlite3_reset(stmt_); }

std::string Statement::column_text(int i) const {
  const auto* text = sqlite3_column_text(stmt_, i);
  return text ? std::string(reinterpret_cast<const char*>(text),
                            static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)))
              : std::string();
}

Transaction::Transaction(Database& db) : db_(db), nested_(sqlite3_get_autocommit(db.handle()) == 0) {
  db_.exec(nested_ ? "SAVEPOINT daenr_nested" : "BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  if (done_) return;
  // Never throw from a destructor: a failed rollback leaves SQLite to roll
  // back when the connection closes.
  sqlite3_exec(db_.handle(), nested_ ? "ROLLBACK TO daenr_nested; RELEASE daenr_nested" : "ROLLBACK", nullptr,
               nullptr, nullptr);
}

void Transaction::commit() {
  db_.exec(nested_ ? "RELEASE daenr_nested" : "COMMIT");
  done_ = true;
}

}  // namespace daenr::storage
