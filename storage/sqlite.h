#pragma once
// A small RAII layer over the SQLite C API: a connection, prepared statements
// bound by name with typed column getters, and a transaction that rolls back
// unless committed. Every failure throws StorageError carrying SQLite's own
// message and the file.

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "job/error.h"

namespace daenr::storage {

/// A database that cannot be opened, read or written. what() is one line.
class StorageError : public job::InputError {
 public:
  using job::InputError::InputError;
};

class Database {
 public:
  enum class Mode { kReadOnly, kReadWrite, kCreate };

  /// Opens `path`. kCreate creates the file if missing; kReadOnly never writes.
  /// Sets a busy timeout so that a reader never fails on a writer's lock.
  Database(const std::filesystem::path& path, Mode mode, int busy_timeout_ms = 10000);
  ~Database();
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  /// Runs one or more statements that return no rows.
  void exec(std::string_view sql);
  sqlite3* handle() const { return db_; }
  const std::filesystem::path& path() const { return path_; }
  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
  int changes() const { return sqlite3_changes(db_); }

  /// The one check of an SQLite call's result code on this connection, at its call site:
  /// anything but SQLITE_OK, SQLITE_ROW or SQLITE_DONE throws StorageError
  /// "<file>: <call> '<what>': <SQLite's message>", `what` being the statement's SQL or the
  /// parameter it was about (left out when empty).
  void check(int rc, const char* call, std::string_view what = {}) const;

 private:
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
};

class Statement {
 public:
  Statement(const Database& db, std::string_view sql);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;

  /// Binds by parameter name, written with its prefix (":id").
  Statement& bind(const char* name, int64_t value);
  Statement& bind(const char* name, int value) { return bind(name, static_cast<int64_t>(value)); }
  Statement& bind(const char* name, double value);
  Statement& bind(const char* name, std::string_view value);
  Statement& bind(const char* name, const char* value) { return bind(name, std::string_view(value)); }
  Statement& bind(const char* name, const std::string& value) {
    return bind(name, std::string_view(value));
  }
  Statement& bind_blob(const char* name, const void* data, std::size_t bytes);
  Statement& bind_null(const char* name);
  template <typename T>
  Statement& bind(const char* name, const std::optional<T>& value) {
    return value ? bind(name, *value) : bind_null(name);
  }

  /// Advances: true while a row is available, false when done.
  bool step();
  /// Runs a statement that returns no rows (exactly one step).
  void run();
  /// Makes the statement ready to run again; bindings stay.
  void reset();

  int64_t column_int(int i) const { return sqlite3_column_int64(stmt_, i); }
  double column_double(int i) const { return sqlite3_column_double(stmt_, i); }
  std::string column_text(int i) const;
  bool column_is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  std::optional<double> column_optional_double(int i) const {
    return column_is_null(i) ? std::nullopt : std::optional<double>(column_double(i));
  }
  std::optional<int64_t> column_optional_int(int i) const {
    return column_is_null(i) ? std::nullopt : std::optional<int64_t>(column_int(i));
  }

 private:
  int index(const char* name) const;

  const Database* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// BEGIN IMMEDIATE (the write lock is taken at once, so that two writers never
/// deadlock in an upgrade) ... COMMIT; the destructor rolls back a transaction
/// that was not committed, e.g. when an exception unwinds through it. Inside
/// another transaction it is a SAVEPOINT instead, so that a caller can group
/// many small writes into one commit (rank 0 recording a burst of results)
/// while each still rolls back alone.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool done_ = false;
  bool nested_ = false;
};

}  // namespace daenr::storage
