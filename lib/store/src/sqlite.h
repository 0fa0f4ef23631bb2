// A thin RAII layer over the SQLite C API: one connection, prepared statements, and an
// IMMEDIATE transaction guard. SQLite errors become absl::Status (SQLITE_CORRUPT/NOTADB ->
// DataLoss, SQLITE_FULL -> ResourceExhausted, everything else Internal).
//
// Not thread-safe: the owner serialises access (ExpertStore holds a mutex).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace t2::store::internal {

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) = delete;
  Statement(const Statement&) = delete;
  ~Statement();

  // 1-based parameter index, as in SQLite. Errors are reported by the next Step().
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, std::string_view text);
  Statement& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
  Statement& Bind(int index, const std::string& text) {
    return Bind(index, std::string_view(text));
  }

  // Rewinds for another run with new bindings.
  Statement& Reset();
  // True when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion of a statement that returns no rows.
  absl::Status Run();

  // 0-based column index.
  int64_t Int(int column) const;
  std::string Text(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_error_ = 0;
};

class Database {
 public:
  static absl::StatusOr<Database> Open(const std::filesystem::path& path);
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) = delete;
  Database(const Database&) = delete;
  ~Database();

  absl::Status Exec(std::string_view sql);
  absl::StatusOr<Statement> Prepare(std::string_view sql);
  // The single value of a one-row, one-column query (a PRAGMA, a COUNT).
  absl::StatusOr<std::string> QueryText(std::string_view sql);
  int64_t LastInsertRowId() const;
  int64_t Changes() const;  // rows the last INSERT, UPDATE or DELETE changed

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// BEGIN IMMEDIATE on construction (takes the write lock up front, so a transaction never
// fails half-way on a lock upgrade); ROLLBACK on destruction unless Commit() succeeded.
class Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(Database& db);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction(const Transaction&) = delete;
  ~Transaction();
  absl::Status Commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
};

absl::Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

}  // namespace t2::store::internal
