// What every part of ExpertStore shares: one Impl (the database handle and its lock, the root's
// file lock, the blob and upload folders, the change log's tail) and the row helpers its
// queries use. Internal to lib/store. The store's methods live one file per concern, all over
// this Impl: open.cc (the root, the schema and its migration, leftovers), experts.cc,
// aliases.cc, mixtures.cc, base_models.cc and events.cc.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "blob_files.h"
#include "json_columns.h"
#include "sqlite.h"
#include "t2/common/status.h"
#include "t2/store/expert_store.h"
#include "t2/store/names.h"

namespace t2::store {
namespace internal {

inline constexpr const char* kExpertColumns =
    "name, version, sha256, size_bytes, base_model, base_fingerprint, targets, normalization, "
    "task, metrics_json, created_at, published_unix_ms, deprecated, published_by";

// Milliseconds since the Unix epoch, for the tables' timestamps.
int64_t NowUnixMs();
// A row selected as kExpertColumns.
ExpertInfo ExpertFromRow(const Statement& row);
// "'name' version N", as messages write a version.
std::string VersionLabel(std::string_view name, int64_t version);

}  // namespace internal

struct ExpertStore::Impl {
  StoreOptions options;
  std::filesystem::path blobs_dir;
  std::filesystem::path tmp_dir;
  int lock_fd = -1;

  // Guards `db` (one connection; SQLite is opened without its own mutex).
  mutable std::mutex mu;
  std::optional<internal::Database> db;

  // The change log's tail and its subscribers; separate from `mu` so that telling them
  // never holds up readers or writers.
  mutable std::mutex event_mu;
  int64_t latest_sequence = 0;
  bool closed = false;
  std::map<int64_t, std::function<void()>> subscribers;  // guarded by event_mu
  int64_t next_subscriber = 0;                           // guarded by event_mu

  bool new_database = false;  // OpenDatabase created the schema just now

  ~Impl() {
    db.reset();
    if (lock_fd >= 0) ::close(lock_fd);  // releases the flock
  }

  absl::Status LockRoot();
  absl::Status OpenDatabase();
  absl::Status RemoveLeftovers();

  void Published(int64_t sequence) {
    {
      std::lock_guard<std::mutex> lock(event_mu);
      latest_sequence = std::max(latest_sequence, sequence);
      for (const auto& [id, on_change] : subscribers) on_change();
    }
  }

  // --- Queries; the caller holds `mu`. ---

  absl::StatusOr<std::optional<ExpertInfo>> FindVersion(std::string_view name, int64_t version) {
    T2_ASSIGN_OR_RETURN(
        internal::Statement stmt,
        db->Prepare(absl::StrCat("SELECT ", internal::kExpertColumns,
                                 " FROM experts WHERE name = ?1 AND version = ?2")));
    stmt.Bind(1, name).Bind(2, version);
    T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return std::optional<ExpertInfo>();
    return std::optional<ExpertInfo>(internal::ExpertFromRow(stmt));
  }

  absl::StatusOr<bool> ExpertNameExists(std::string_view name) {
    T2_ASSIGN_OR_RETURN(internal::Statement stmt,
                        db->Prepare("SELECT 1 FROM experts WHERE name = ?1 LIMIT 1"));
    stmt.Bind(1, name);
    return stmt.Step();
  }

  absl::StatusOr<std::optional<Alias>> FindAlias(std::string_view alias) {
    T2_ASSIGN_OR_RETURN(
        internal::Statement stmt,
        db->Prepare("SELECT a.alias, a.name, a.version, e.sha256, a.updated_unix_ms "
                    "FROM aliases a JOIN experts e "
                    "ON e.name = a.name AND e.version = a.version "
                    "WHERE a.alias = ?1"));
    stmt.Bind(1, alias);
    T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return std::optional<Alias>();
    return std::optional<Alias>(AliasFromRow(stmt));
  }

  static Alias AliasFromRow(const internal::Statement& row) {
    return Alias{.alias = row.Text(0),
                 .target = {.name = row.Text(1), .version = row.Int(2), .sha256 = row.Text(3)},
                 .updated_unix_ms = row.Int(4)};
  }

  absl::StatusOr<std::optional<BaseModel>> FindBaseModel(std::string_view fingerprint) {
    T2_ASSIGN_OR_RETURN(
        internal::Statement stmt,
        db->Prepare("SELECT fingerprint, name, targets, target_ranks FROM base_models "
                    "WHERE fingerprint = ?1"));
    stmt.Bind(1, fingerprint);
    T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return std::optional<BaseModel>();
    T2_ASSIGN_OR_RETURN(auto ranks, internal::RanksFromJson(stmt.Text(3)));
    BaseModel base{.fingerprint = stmt.Text(0),
                   .name = stmt.Text(1),
                   .targets = stmt.Text(2),
                   .target_ranks = std::move(ranks)};
    return std::optional<BaseModel>(std::move(base));
  }

  absl::StatusOr<Mixture> MixtureFromRow(const internal::Statement& row) {
    Mixture m;
    m.name = row.Text(0);
    T2_RETURN_IF_ERROR(internal::MixtureSpecFromJson(row.Text(1), &m));
    m.source = row.Text(2);
    m.updated_unix_ms = row.Int(3);
    return m;
  }

  // Inside a transaction; returns the new event's sequence.
  absl::StatusOr<int64_t> AppendEvent(EventKind kind, std::string_view name, int64_t version,
                                      std::string_view target, int64_t now_ms) {
    T2_ASSIGN_OR_RETURN(internal::Statement stmt,
                        db->Prepare("INSERT INTO events (kind, name, version, target, unix_ms) "
                                    "VALUES (?1, ?2, ?3, ?4, ?5)"));
    stmt.Bind(1, EventKindName(kind))
        .Bind(2, name)
        .Bind(3, version)
        .Bind(4, target)
        .Bind(5, now_ms);
    T2_RETURN_IF_ERROR(stmt.Run());
    const int64_t sequence = db->LastInsertRowId();
    // Retention: by primary key, so one indexed range delete per change.
    T2_ASSIGN_OR_RETURN(internal::Statement prune,
                        db->Prepare("DELETE FROM events WHERE sequence <= ?1"));
    prune.Bind(1, sequence - options.max_events);
    T2_RETURN_IF_ERROR(prune.Run());
    return sequence;
  }

  bool BlobIntact(const ExpertInfo& info) const {
    return internal::BlobAccess::OpenVerified(internal::BlobPath(blobs_dir, info.sha256),
                                              info.size_bytes, info.sha256)
        .ok();
  }

  // Publish's insert of a checked expert's row and its event, in one transaction; returns the
  // event's sequence. The blob is already at its address. Defined in experts.cc.
  absl::StatusOr<int64_t> InsertExpert(const ExpertInfo& info);

  // Same name+version: the stored info when the bytes are the same, else AlreadyExists.
  // nullopt when the version is new. Also refuses an expert name that is taken by an alias.
  absl::StatusOr<std::optional<ExpertInfo>> CheckPublishable(const PublishHeader& header) {
    T2_ASSIGN_OR_RETURN(std::optional<ExpertInfo> existing,
                        FindVersion(header.name, header.version));
    if (existing.has_value()) {
      if (existing->sha256 == header.sha256) return existing;
      return absl::AlreadyExistsError(absl::StrCat(
          "publish.header.version: ", internal::VersionLabel(header.name, header.version),
          " already exists with other bytes (sha256 ", existing->sha256,
          "); publish a new version"));
    }
    T2_ASSIGN_OR_RETURN(std::optional<Alias> alias, FindAlias(header.name));
    if (alias.has_value()) {
      return absl::AlreadyExistsError(
          absl::StrCat("publish.header.name: '", header.name,
                       "' is an alias; an expert may not share its name"));
    }
    return std::optional<ExpertInfo>();
  }
};

}  // namespace t2::store
