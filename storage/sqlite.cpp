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
    throw StorageError(fmt::format("{}: cannot open database: {}", path.string(), msg));
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, busy_timeout_ms);
}

Database::~Database() {
  // sqlite3_close_v2 defers the close until every statement is finalised, so
  // destruction order between a Database and its Statements cannot leak.
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

void Database::fail(std::string_view context) const {
  throw StorageError(fmt::format("{}: {}: {}", path_.string(), context, sqlite3_errmsg(db_)));
}

void Database::exec(std::string_view sql) {
  char* err = nullptr;
  const std::string text(sql);
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw StorageError(fmt::format("{}: {}", path_.string(), msg));
  }
}

Statement::Statement(const Database& db, std::string_view sql) : db_(&db) {
  if (sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()),
                         SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
    db.fail(fmt::format("cannot prepare '{}'", sql.substr(0, 60)));
  }
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
  if (sqlite3_bind_int64(stmt_, index(name), value) != SQLITE_OK) db_->fail("bind");
  return *this;
}

Statement& Statement::bind(const char* name, double value) {
  if (sqlite3_bind_double(stmt_, index(name), value) != SQLITE_OK) db_->fail("bind");
  return *this;
}

Statement& Statement::bind(const char* name, std::string_view value) {
  if (sqlite3_bind_text64(stmt_, index(name), value.data(), value.size(), SQLITE_TRANSIENT,
                          SQLITE_UTF8) != SQLITE_OK) {
    db_->fail("bind");
  }
  return *this;
}

Statement& Statement::bind_blob(const char* name, const void* data, std::size_t bytes) {
  if (sqlite3_bind_blob64(stmt_, index(name), data, bytes, SQLITE_TRANSIENT) != SQLITE_OK) {
    db_->fail("bind");
  }
  return *this;
}

Statement& Statement::bind_null(const char* name) {
  if (sqlite3_bind_null(stmt_, index(name)) != SQLITE_OK) db_->fail("bind");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const std::string sql = std::string(sqlite3_sql(stmt_)).substr(0, 60);
  sqlite3_reset(stmt_);
  db_->fail(fmt::format("'{}'", sql));
}

void Statement::run() {
  step();
  reset();
}

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
