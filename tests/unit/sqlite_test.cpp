// The SQLite RAII layer: named binding, typed columns, transactions that roll
// back unless committed, and one-line errors naming the file.

#include <gtest/gtest.h>

#include <fstream>

#include "storage/sqlite.h"
#include "tests/support/temp_dir.h"

namespace daenr::storage {
namespace {

using daenr::testing::TempDir;

TEST(Sqlite, BindsByNameAndReadsTypedColumns) {
  TempDir dir;
  Database db(dir.path() / "a.sqlite", Database::Mode::kCreate);
  db.exec("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, x REAL, note TEXT)");
  Statement insert(db, "INSERT INTO t (id, n, x, note) VALUES (:id, :n, :x, :note)");
  insert.bind(":id", "a").bind(":n", int64_t{7}).bind(":x", 0.25).bind(":note", std::optional<std::string>{});
  insert.run();
  insert.bind(":id", "b").bind(":n", 8).bind(":x", 1.5).bind(":note", std::string("hi"));
  insert.run();
  EXPECT_EQ(db.changes(), 1);
  Statement select(db, "SELECT id, n, x, note FROM t ORDER BY id");
  ASSERT_TRUE(select.step());
  EXPECT_EQ(select.column_text(0), "a");
  EXPECT_EQ(select.column_int(1), 7);
  EXPECT_DOUBLE_EQ(select.column_double(2), 0.25);
  EXPECT_TRUE(select.column_is_null(3));
  EXPECT_FALSE(select.column_optional_double(3).has_value());
  ASSERT_TRUE(select.step());
  EXPECT_EQ(select.column_text(3), "hi");
  EXPECT_FALSE(select.step());
  EXPECT_THROW(insert.bind(":nope", 1), StorageError);
}

// One helper checks every call (Database::check): its error names the file, the SQLite call, the
// statement and SQLite's message, and the statement can run again afterwards.
TEST(Sqlite, AFailedCallNamesTheFileTheCallTheStatementAndSqlitesMessage) {
  TempDir dir;
  const auto path = dir.path() / "a.sqlite";
  Database db(path, Database::Mode::kCreate);
  db.exec("CREATE TABLE t (x INTEGER PRIMARY KEY)");
  Statement insert(db, "INSERT INTO t (x) VALUES (:x)");
  insert.bind(":x", 1).run();
  try {
    insert.run();
    FAIL() << "a duplicate key was inserted";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()),
              path.string() + ": sqlite3_step 'INSERT INTO t (x) VALUES (:x)': UNIQUE constraint failed: t.x");
  }
  insert.bind(":x", 2).run();
  EXPECT_EQ(db.changes(), 1);
  try {
    Statement bad(db, "SELECT missing FROM t");
    FAIL() << "a statement on a missing column was prepared";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()), path.string() + ": sqlite3_prepare_v3 'SELECT missing FROM t': no such column: missing");
  }
}

TEST(Sqlite, TransactionRollsBackUnlessCommitted) {
  TempDir dir;
  Database db(dir.path() / "a.sqlite", Database::Mode::kCreate);
  db.exec("CREATE TABLE t (n INTEGER)");
  auto count = [&] {
    Statement s(db, "SELECT count(*) FROM t");
    s.step();
    return s.column_int(0);
  };
  try {
    Transaction tx(db);
    db.exec("INSERT INTO t VALUES (1)");
    throw std::runtime_error("unwind");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(count(), 0);
  {
    Transaction tx(db);
    db.exec("INSERT INTO t VALUES (2)");
    tx.commit();
  }
  EXPECT_EQ(count(), 1);
  // Written data survive closing and reopening read-only.
  Database ro(dir.path() / "a.sqlite", Database::Mode::kReadOnly);
  Statement s(ro, "SELECT n FROM t");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_int(0), 2);
  EXPECT_THROW(ro.exec("INSERT INTO t VALUES (3)"), StorageError);
}

TEST(Sqlite, ErrorsNameTheFile) {
  TempDir dir;
  const auto missing = dir.path() / "missing.sqlite";
  try {
    Database db(missing, Database::Mode::kReadWrite);
    FAIL() << "expected StorageError";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(missing.string() + ": cannot open database", 0), 0u) << e.what();
  }
  const auto junk = dir.path() / "junk.sqlite";
  { std::ofstream(junk) << std::string(4096, 'x'); }
  Database db(junk, Database::Mode::kReadWrite);
  try {
    db.exec("SELECT * FROM sqlite_master");
    FAIL() << "expected StorageError";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()), junk.string() + ": sqlite3_exec 'SELECT * FROM sqlite_master': file is not a database");
  }
}

}  // namespace
}  // namespace daenr::storage
