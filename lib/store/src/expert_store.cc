#include "t2/store/expert_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "blob_files.h"
#include "crash_point.h"
#include "json_columns.h"
#include "sqlite.h"
#include "t2/common/atomic_file.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/store/expert_file.h"
#include "t2/store/names.h"

namespace t2::store {
namespace {

namespace fs = std::filesystem;
using internal::BlobAccess;
using internal::Database;
using internal::Statement;
using internal::Transaction;

constexpr int kSchemaVersion = 2;
constexpr size_t kMaxSourceBytes = 64 << 10;

// Version 2 (version 1 lacked experts.published_by: MigrateSchema adds it). Experts are
// immutable apart from `deprecated`; base model ranks and mixture specs
// are JSON (json_columns.h). AUTOINCREMENT keeps event sequences from ever being reused.
constexpr const char* kSchema = R"sql(
CREATE TABLE base_models (
  fingerprint TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  targets TEXT NOT NULL,
  target_ranks TEXT NOT NULL,
  registered_unix_ms INTEGER NOT NULL
);
CREATE TABLE experts (
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  base_model TEXT NOT NULL,
  base_fingerprint TEXT NOT NULL REFERENCES base_models(fingerprint),
  targets TEXT NOT NULL,
  normalization TEXT NOT NULL,
  task TEXT NOT NULL,
  metrics_json TEXT NOT NULL,
  created_at TEXT NOT NULL,
  published_unix_ms INTEGER NOT NULL,
  deprecated INTEGER NOT NULL DEFAULT 0,
  published_by TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (name, version)
);
CREATE INDEX experts_by_sha256 ON experts(sha256);
CREATE TABLE aliases (
  alias TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_unix_ms INTEGER NOT NULL,
  FOREIGN KEY (name, version) REFERENCES experts(name, version)
);
CREATE TABLE mixtures (
  name TEXT PRIMARY KEY,
  spec_json TEXT NOT NULL,
  source TEXT NOT NULL,
  updated_unix_ms INTEGER NOT NULL
);
CREATE TABLE events (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  target TEXT NOT NULL,
  unix_ms INTEGER NOT NULL
);
)sql";

constexpr const char* kExpertColumns =
    "name, version, sha256, size_bytes, base_model, base_fingerprint, targets, normalization, "
    "task, metrics_json, created_at, published_unix_ms, deprecated, published_by";

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ExpertInfo ExpertFromRow(const Statement& row) {
  ExpertInfo info;
  info.name = row.Text(0);
  info.version = row.Int(1);
  info.sha256 = row.Text(2);
  info.size_bytes = row.Int(3);
  info.base_model = row.Text(4);
  info.base_fingerprint = row.Text(5);
  info.targets = row.Text(6);
  info.normalization = row.Text(7);
  info.task = row.Text(8);
  info.metrics_json = row.Text(9);
  info.created_at = row.Text(10);
  info.published_unix_ms = row.Int(11);
  info.deprecated = row.Int(12) != 0;
  info.published_by = row.Text(13);
  return info;
}

absl::StatusOr<EventKind> ParseEventKind(const std::string& text) {
  for (EventKind kind : {EventKind::kExpertPublished, EventKind::kExpertDeprecated,
                         EventKind::kAliasSet, EventKind::kAliasDeleted, EventKind::kMixturePut,
                         EventKind::kMixtureDeleted}) {
    if (text == EventKindName(kind)) return kind;
  }
  return absl::DataLossError(absl::StrCat("registry database: unknown event kind '", text, "'"));
}

std::string VersionLabel(std::string_view name, int64_t version) {
  return absl::StrCat("'", AsAbsl(name), "' version ", version);
}

// An expert file that does not parse is the publisher's mistake, whatever the reader calls it
// (a truncated file is DataLoss to the safetensors reader); I/O trouble stays as it is. The
// reader names the file it read, the upload's temporary path here: the client learns nothing of
// the server's directories, it sees "the uploaded file".
absl::Status AsPublishBlobError(const absl::Status& status, const fs::path& upload) {
  const std::string message =
      absl::StrReplaceAll(status.message(), {{upload.string(), "the uploaded file"}});
  absl::Status annotated = Annotate(absl::Status(status.code(), message), "publish.blob");
  switch (status.code()) {
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
      return absl::InvalidArgumentError(annotated.message());
    default:
      return annotated;
  }
}

absl::Status CheckAlpha(const Mixture& m) {
  const size_t k = m.experts.size();
  const size_t n = m.alpha.size();
  if (m.per_layer) {
    if (n == 0 || n % k != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("mixture.spec.alpha: ", n, " weights is not a positive multiple of ", k,
                       " experts (per_layer: one row of ", k, " weights per layer)"));
    }
  } else if (!(n == k || (n == 0 && k == 1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("mixture.spec.alpha: ", n, " weights for ", k, " experts"));
  }
  for (size_t i = 0; i < n; ++i) {
    const double a = m.alpha[i];
    if (!std::isfinite(a) || a < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("mixture.spec.alpha[", i, "]: ", a, " is not finite and >= 0"));
    }
  }
  for (size_t row = 0; row * k < n; ++row) {
    double sum = 0;
    for (size_t j = 0; j < k; ++j) sum += m.alpha[row * k + j];
    if (!(sum > 0)) {
      return absl::InvalidArgumentError(
          m.per_layer ? absl::StrCat("mixture.spec.alpha: the weights of layer ", row, " sum to 0")
                      : std::string("mixture.spec.alpha: the weights sum to 0"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view EventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::kExpertPublished:
      return "expert_published";
    case EventKind::kExpertDeprecated:
      return "expert_deprecated";
    case EventKind::kAliasSet:
      return "alias_set";
    case EventKind::kAliasDeleted:
      return "alias_deleted";
    case EventKind::kMixturePut:
      return "mixture_put";
    case EventKind::kMixtureDeleted:
      return "mixture_deleted";
  }
  return "unknown";
}

absl::Status StoreOptions::Validate() const {
  if (root.empty()) return absl::InvalidArgumentError("store.root: empty");
  if (max_blob_bytes < 1 || max_blob_bytes > kMaxBlobBytes) {
    return absl::InvalidArgumentError(absl::StrCat("store.max_blob_bytes: ", max_blob_bytes,
                                                   " is not in [1, ", kMaxBlobBytes, "]"));
  }
  if (max_events < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("store.max_events: ", max_events, " is not positive"));
  }
  return absl::OkStatus();
}

struct ExpertStore::Impl {
  StoreOptions options;
  fs::path blobs_dir;
  fs::path tmp_dir;
  int lock_fd = -1;

  // Guards `db` (one connection; SQLite is opened without its own mutex).
  mutable std::mutex mu;
  std::optional<Database> db;

  // The change-log tail that WaitForEvents waits on; separate from `mu` so waiting never
  // holds up readers or writers.
  mutable std::mutex event_mu;
  mutable std::condition_variable event_cv;
  int64_t latest_sequence = 0;
  bool closed = false;

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
    }
    event_cv.notify_all();
  }

  // --- Queries; the caller holds `mu`. ---

  absl::StatusOr<std::optional<ExpertInfo>> FindVersion(std::string_view name, int64_t version) {
    T2_ASSIGN_OR_RETURN(Statement stmt, db->Prepare(absl::StrCat(
                                            "SELECT ", kExpertColumns,
                                            " FROM experts WHERE name = ?1 AND version = ?2")));
    stmt.Bind(1, name).Bind(2, version);
    T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return std::optional<ExpertInfo>();
    return std::optional<ExpertInfo>(ExpertFromRow(stmt));
  }

  absl::StatusOr<bool> ExpertNameExists(std::string_view name) {
    T2_ASSIGN_OR_RETURN(Statement stmt,
                        db->Prepare("SELECT 1 FROM experts WHERE name = ?1 LIMIT 1"));
    stmt.Bind(1, name);
    return stmt.Step();
  }

  absl::StatusOr<std::optional<Alias>> FindAlias(std::string_view alias) {
    T2_ASSIGN_OR_RETURN(
        Statement stmt,
        db->Prepare("SELECT a.alias, a.name, a.version, e.sha256, a.updated_unix_ms "
                    "FROM aliases a JOIN experts e "
                    "ON e.name = a.name AND e.version = a.version "
                    "WHERE a.alias = ?1"));
    stmt.Bind(1, alias);
    T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return std::optional<Alias>();
    return std::optional<Alias>(AliasFromRow(stmt));
  }

  static Alias AliasFromRow(const Statement& row) {
    return Alias{.alias = row.Text(0),
                 .target = {.name = row.Text(1), .version = row.Int(2), .sha256 = row.Text(3)},
                 .updated_unix_ms = row.Int(4)};
  }

  absl::StatusOr<std::optional<BaseModel>> FindBaseModel(std::string_view fingerprint) {
    T2_ASSIGN_OR_RETURN(
        Statement stmt,
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

  absl::StatusOr<Mixture> MixtureFromRow(const Statement& row) {
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
    T2_ASSIGN_OR_RETURN(Statement stmt,
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
    T2_ASSIGN_OR_RETURN(Statement prune, db->Prepare("DELETE FROM events WHERE sequence <= ?1"));
    prune.Bind(1, sequence - options.max_events);
    T2_RETURN_IF_ERROR(prune.Run());
    return sequence;
  }

  bool BlobIntact(const ExpertInfo& info) const {
    return BlobAccess::OpenVerified(internal::BlobPath(blobs_dir, info.sha256), info.size_bytes,
                                    info.sha256)
        .ok();
  }

  // Same name+version: the stored info when the bytes are the same, else AlreadyExists.
  // nullopt when the version is new. Also refuses an expert name that is taken by an alias.
  absl::StatusOr<std::optional<ExpertInfo>> CheckPublishable(const PublishHeader& header) {
    T2_ASSIGN_OR_RETURN(std::optional<ExpertInfo> existing,
                        FindVersion(header.name, header.version));
    if (existing.has_value()) {
      if (existing->sha256 == header.sha256) return existing;
      return absl::AlreadyExistsError(
          absl::StrCat("publish.header.version: ", VersionLabel(header.name, header.version),
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

absl::Status ExpertStore::Impl::LockRoot() {
  const fs::path path = options.root / "LOCK";
  lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return ErrnoStatus("open", path, errno);
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat("store.root: ", options.root.string(),
                                                        " is in use by another registry process"));
    }
    return ErrnoStatus("flock", path, errno);
  }
  return absl::OkStatus();
}

absl::Status ExpertStore::Impl::OpenDatabase() {
  T2_ASSIGN_OR_RETURN(Database opened, Database::Open(options.root / "registry.db"));
  db.emplace(std::move(opened));
  T2_ASSIGN_OR_RETURN(std::string mode, db->QueryText("PRAGMA journal_mode=WAL"));
  if (mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("registry database: cannot switch to WAL mode (got '", mode, "')"));
  }
  // FULL rather than NORMAL: in WAL mode NORMAL may lose the last commits on a power cut
  // (not on a process crash). A publish that returned OK has been announced on Watch and the
  // trainer may have deleted its copy, so it must survive; commits are rare (one per change)
  // and cost one WAL fsync each, which is cheap next to the blob's own fsyncs.
  T2_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL"));
  T2_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON"));
  T2_ASSIGN_OR_RETURN(std::string version_text, db->QueryText("PRAGMA user_version"));
  const int version = std::atoi(version_text.c_str());
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("registry database: schema version ", version,
                                                      " is newer than this build's (",
                                                      kSchemaVersion, ")"));
  }
  if (version == 0) {
    new_database = true;
    T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db));
    T2_RETURN_IF_ERROR(db->Exec(kSchema));
    T2_RETURN_IF_ERROR(db->Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion)));
    T2_RETURN_IF_ERROR(txn.Commit());
  } else if (version == 1) {
    // Experts published before version 2 have no known publisher ('').
    T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db));
    T2_RETURN_IF_ERROR(
        db->Exec("ALTER TABLE experts ADD COLUMN published_by TEXT NOT NULL DEFAULT ''"));
    T2_RETURN_IF_ERROR(db->Exec("PRAGMA user_version=2"));
    T2_RETURN_IF_ERROR(txn.Commit());
    LogInfo("registry database: schema upgraded from version 1 to 2 (experts.published_by)");
  }
  T2_ASSIGN_OR_RETURN(std::string latest,
                      db->QueryText("SELECT COALESCE(MAX(sequence), 0) FROM events"));
  latest_sequence = std::atoll(latest.c_str());
  return absl::OkStatus();
}

absl::Status ExpertStore::Impl::RemoveLeftovers() {
  std::error_code ec;
  // Uploads that were in flight when the last process died.
  int removed_uploads = 0;
  for (const auto& entry : fs::directory_iterator(tmp_dir, ec)) {
    std::error_code remove_ec;
    fs::remove_all(entry.path(), remove_ec);
    if (!remove_ec) ++removed_uploads;
  }
  if (ec) return absl::InternalError(absl::StrCat(tmp_dir.string(), ": ", ec.message()));
  if (removed_uploads > 0) {
    LogInfo(absl::StrCat("registry: removed ", removed_uploads, " unfinished upload(s)"));
  }
  if (!options.remove_unreferenced_blobs) return absl::OkStatus();
  if (new_database && !fs::is_empty(blobs_dir, ec)) {
    // Every blob would look unreferenced to a database that was lost or pointed elsewhere;
    // deleting them would turn one mistake into two.
    LogWarning(absl::StrCat("registry: ", (options.root / "registry.db").string(), " is new but ",
                            blobs_dir.string(), " is not empty; leaving its blobs alone"));
    return absl::OkStatus();
  }

  // Blobs renamed into place by a publish that died before its commit.
  T2_ASSIGN_OR_RETURN(Statement referenced,
                      db->Prepare("SELECT 1 FROM experts WHERE sha256 = ?1 LIMIT 1"));
  int removed_blobs = 0;
  for (const auto& shard : fs::directory_iterator(blobs_dir, ec)) {
    if (!shard.is_directory()) continue;
    std::error_code shard_ec;
    for (const auto& entry : fs::directory_iterator(shard.path(), shard_ec)) {
      const std::string name = entry.path().filename().string();
      bool keep = false;
      if (IsSha256Hex(name) && name.compare(0, 2, shard.path().filename().string()) == 0) {
        referenced.Reset().Bind(1, name);
        T2_ASSIGN_OR_RETURN(keep, referenced.Step());
      }
      if (keep) continue;
      std::error_code remove_ec;
      fs::remove(entry.path(), remove_ec);
      if (!remove_ec) ++removed_blobs;
    }
    if (shard_ec)
      return absl::InternalError(absl::StrCat(shard.path().string(), ": ", shard_ec.message()));
  }
  if (ec) return absl::InternalError(absl::StrCat(blobs_dir.string(), ": ", ec.message()));
  if (removed_blobs > 0) {
    LogInfo(absl::StrCat("registry: removed ", removed_blobs, " blob(s) no expert refers to"));
  }
  return absl::OkStatus();
}

ExpertStore::ExpertStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExpertStore::~ExpertStore() { Close(); }

absl::StatusOr<std::unique_ptr<ExpertStore>> ExpertStore::Open(const StoreOptions& options) {
  T2_RETURN_IF_ERROR(options.Validate());
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->blobs_dir = options.root / "blobs";
  impl->tmp_dir = options.root / "tmp";
  for (const fs::path& dir : {options.root, impl->blobs_dir, impl->tmp_dir}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("creating ", dir.string(), ": ", ec.message()));
  }
  T2_RETURN_IF_ERROR(impl->LockRoot());
  T2_RETURN_IF_ERROR(impl->OpenDatabase());
  T2_RETURN_IF_ERROR(impl->RemoveLeftovers());
  return std::unique_ptr<ExpertStore>(new ExpertStore(std::move(impl)));
}

const fs::path& ExpertStore::root() const { return impl_->options.root; }

absl::StatusOr<StagedBlob> ExpertStore::StageBlob() {
  return BlobAccess::Stage(impl_->tmp_dir, impl_->options.max_blob_bytes);
}

absl::StatusOr<StagedBlob> ExpertStore::StageFile(const fs::path& path) {
  T2_ASSIGN_OR_RETURN(StagedBlob blob, StageBlob());
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::string buffer(1 << 20, '\0');
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize n = in.gcount();
    if (n > 0)
      T2_RETURN_IF_ERROR(blob.Append(std::string_view(buffer.data(), static_cast<size_t>(n))));
  }
  if (in.bad()) return absl::InternalError(absl::StrCat("reading ", path.string()));
  return blob;
}

absl::StatusOr<ExpertInfo> ExpertStore::Publish(const PublishHeader& header, StagedBlob blob) {
  T2_RETURN_IF_ERROR(CheckPublishHeader(header, impl_->options.max_blob_bytes));
  if (blob.size() != header.size_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("publish.header.size_bytes: declared ",
                                                   header.size_bytes, " bytes but the blob holds ",
                                                   blob.size()));
  }
  T2_ASSIGN_OR_RETURN(std::string sha256, BlobAccess::Seal(blob));
  if (sha256 != header.sha256) {
    return absl::InvalidArgumentError(absl::StrCat("publish.header.sha256: declared ",
                                                   header.sha256, " but the blob's is ", sha256));
  }
  internal::CrashPoint("blob_written");
  std::optional<ExpertInfo> repeat;
  {
    // Answer a repeat or a conflict before the (costlier) file checks.
    std::lock_guard<std::mutex> lock(impl_->mu);
    T2_ASSIGN_OR_RETURN(repeat, impl_->CheckPublishable(header));
  }
  // Hashing a stored blob (up to 256 MiB) happens here, outside the lock.
  const bool repairing = repeat.has_value() && !impl_->BlobIntact(*repeat);
  if (repeat.has_value() && !repairing) return *repeat;

  // A repeat whose stored copy is damaged skips the checks (its row was checked when it was
  // first published) and only puts the bytes back below.
  std::optional<ExpertInfo> info;
  if (!repeat.has_value()) {
    T2_ASSIGN_OR_RETURN(info, CheckExpertBlob(header, sha256, blob.path()));
  }
  int64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    // Again: another publish of the same version may have committed meanwhile.
    T2_ASSIGN_OR_RETURN(repeat, impl_->CheckPublishable(header));
    if (repeat.has_value()) {
      // Our sealed bytes hash to the stored address, so putting them there is always right:
      // it repairs a damaged copy, and replaces an intact one (one a concurrent publish put
      // back meanwhile) with identical bytes. No hashing under the lock.
      T2_RETURN_IF_ERROR(
          internal::DurableRename(blob.path(), internal::BlobPath(impl_->blobs_dir, sha256)));
      BlobAccess::Release(blob);
      if (repairing) {
        LogWarning(absl::StrCat("registry: republishing ",
                                VersionLabel(header.name, header.version),
                                " replaced its damaged blob"));
      }
      return *repeat;
    }
    if (!info.has_value()) return absl::InternalError("publish: a stored version disappeared");

    // The blob is durable at its address before any row points at it. Renaming over an
    // existing blob with the same address replaces it with identical bytes (and repairs a
    // damaged copy).
    T2_RETURN_IF_ERROR(
        internal::DurableRename(blob.path(), internal::BlobPath(impl_->blobs_dir, sha256)));
    BlobAccess::Release(blob);
    internal::CrashPoint("blob_renamed");

    Database& db = *impl_->db;
    T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
    T2_ASSIGN_OR_RETURN(
        Statement insert,
        db.Prepare(
            absl::StrCat("INSERT INTO experts (", kExpertColumns,
                         ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?13)")));
    insert.Bind(1, info->name).Bind(2, info->version).Bind(3, info->sha256);
    insert.Bind(4, info->size_bytes).Bind(5, info->base_model).Bind(6, info->base_fingerprint);
    insert.Bind(7, info->targets).Bind(8, info->normalization).Bind(9, info->task);
    insert.Bind(10, info->metrics_json).Bind(11, info->created_at);
    insert.Bind(12, info->published_unix_ms).Bind(13, info->published_by);
    T2_RETURN_IF_ERROR(insert.Run());
    T2_ASSIGN_OR_RETURN(sequence, impl_->AppendEvent(EventKind::kExpertPublished, info->name,
                                                     info->version, "", info->published_unix_ms));
    internal::CrashPoint("row_inserted");
    T2_RETURN_IF_ERROR(txn.Commit());
    internal::CrashPoint("committed");
  }
  impl_->Published(sequence);
  LogInfo(absl::StrCat("registry: published ", VersionLabel(info->name, info->version), " (",
                       info->size_bytes, " bytes, sha256 ", info->sha256.substr(0, 12), ")",
                       info->published_by.empty() ? "" : absl::StrCat(" by ", info->published_by)));
  return *info;
}

absl::StatusOr<ExpertInfo> ExpertStore::CheckExpertBlob(const PublishHeader& header,
                                                        const std::string& sha256,
                                                        const fs::path& path) const {
  absl::StatusOr<ExpertFileSummary> summary = ReadExpertFile(path);
  if (!summary.ok()) return AsPublishBlobError(summary.status(), path);
  std::optional<BaseModel> base;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    T2_ASSIGN_OR_RETURN(base, impl_->FindBaseModel(summary->base_fingerprint));
  }
  if (!base.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("publish.blob: metadata 'base_fingerprint': no base model with fingerprint ",
                     summary->base_fingerprint, " ('", summary->base_model,
                     "') is registered; a worker serving it registers it at start"));
  }
  T2_RETURN_IF_ERROR(Annotate(CheckAgainstBase(*summary, *base), "publish.blob"));
  return ExpertInfo{.name = header.name,
                    .version = header.version,
                    .sha256 = sha256,
                    .size_bytes = header.size_bytes,
                    .base_model = summary->base_model,
                    .base_fingerprint = summary->base_fingerprint,
                    .targets = summary->targets,
                    .normalization = summary->normalization,
                    .task = summary->task,
                    .metrics_json = summary->metrics_json,
                    .created_at = summary->created_at,
                    .published_unix_ms = NowUnixMs(),
                    .deprecated = false,
                    .published_by = header.publisher};
}

absl::StatusOr<ExpertInfo> ExpertStore::ResolveExpert(std::string_view name_or_alias,
                                                      int64_t version,
                                                      std::string_view request) const {
  const std::string name_field = absl::StrCat(AsAbsl(request), ".name");
  const std::string version_field = absl::StrCat(AsAbsl(request), ".version");
  T2_RETURN_IF_ERROR(CheckName(name_field, name_or_alias));
  if (version < 0) {
    return absl::InvalidArgumentError(absl::StrCat(version_field, ": ", version, " is negative"));
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  T2_ASSIGN_OR_RETURN(std::optional<Alias> alias, impl_->FindAlias(name_or_alias));
  if (alias.has_value()) {
    if (version != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          version_field, ": '", AsAbsl(name_or_alias),
          "' is an alias, which names one version; ask for version 0 or use the expert name '",
          alias->target.name, "'"));
    }
    T2_ASSIGN_OR_RETURN(std::optional<ExpertInfo> target,
                        impl_->FindVersion(alias->target.name, alias->target.version));
    if (!target.has_value()) {
      return absl::DataLossError(
          absl::StrCat("alias '", AsAbsl(name_or_alias), "' points at a missing expert"));
    }
    return *target;
  }
  if (version > 0) {
    T2_ASSIGN_OR_RETURN(std::optional<ExpertInfo> info, impl_->FindVersion(name_or_alias, version));
    if (!info.has_value()) {
      return absl::NotFoundError(
          absl::StrCat(version_field, ": no expert ", VersionLabel(name_or_alias, version)));
    }
    return *info;
  }
  T2_ASSIGN_OR_RETURN(Statement stmt, impl_->db->Prepare(absl::StrCat(
                                          "SELECT ", kExpertColumns,
                                          " FROM experts WHERE name = ?1 AND deprecated = 0 "
                                          "ORDER BY version DESC LIMIT 1")));
  stmt.Bind(1, name_or_alias);
  T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (row) return ExpertFromRow(stmt);
  T2_ASSIGN_OR_RETURN(bool exists, impl_->ExpertNameExists(name_or_alias));
  if (exists) {
    return absl::NotFoundError(absl::StrCat(name_field, ": every version of '",
                                            AsAbsl(name_or_alias),
                                            "' is deprecated; ask for one by number"));
  }
  return absl::NotFoundError(
      absl::StrCat(name_field, ": no expert or alias named '", AsAbsl(name_or_alias), "'"));
}

absl::StatusOr<BlobReader> ExpertStore::OpenBlob(const ExpertInfo& info) const {
  absl::StatusOr<BlobReader> reader = BlobAccess::OpenVerified(
      internal::BlobPath(impl_->blobs_dir, info.sha256), info.size_bytes, info.sha256);
  if (!reader.ok()) {
    if (reader.status().code() == absl::StatusCode::kDataLoss) {
      LogError(absl::StrCat("registry: expert ", VersionLabel(info.name, info.version), ": ",
                            reader.status().message()));
    }
    return Annotate(reader.status(),
                    absl::StrCat("expert ", VersionLabel(info.name, info.version)));
  }
  return reader;
}

absl::StatusOr<ExpertBlob> ExpertStore::GetExpert(std::string_view name_or_alias,
                                                  int64_t version) const {
  T2_ASSIGN_OR_RETURN(ExpertInfo info, ResolveExpert(name_or_alias, version));
  T2_RETURN_IF_ERROR(OpenBlob(info).status());
  fs::path path = internal::BlobPath(impl_->blobs_dir, info.sha256);
  return ExpertBlob{.info = std::move(info), .path = std::move(path)};
}

absl::StatusOr<std::vector<ExpertInfo>> ExpertStore::ListExperts(std::string_view name,
                                                                 bool include_deprecated) const {
  if (!name.empty()) T2_RETURN_IF_ERROR(CheckName("list.name", name));
  std::string sql = absl::StrCat("SELECT ", kExpertColumns, " FROM experts WHERE 1");
  if (!name.empty()) absl::StrAppend(&sql, " AND name = ?1");
  if (!include_deprecated) absl::StrAppend(&sql, " AND deprecated = 0");
  absl::StrAppend(&sql, " ORDER BY name, version");
  std::lock_guard<std::mutex> lock(impl_->mu);
  T2_ASSIGN_OR_RETURN(Statement stmt, impl_->db->Prepare(sql));
  if (!name.empty()) stmt.Bind(1, name);
  std::vector<ExpertInfo> out;
  T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
  while (row) {
    out.push_back(ExpertFromRow(stmt));
    T2_ASSIGN_OR_RETURN(row, stmt.Step());
  }
  return out;
}

absl::StatusOr<ExpertInfo> ExpertStore::Deprecate(std::string_view name, int64_t version) {
  T2_RETURN_IF_ERROR(CheckName("deprecate.name", name));
  T2_RETURN_IF_ERROR(CheckVersion("deprecate.version", version));
  int64_t sequence = 0;
  ExpertInfo info;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db));
    T2_ASSIGN_OR_RETURN(std::optional<ExpertInfo> found, impl_->FindVersion(name, version));
    if (!found.has_value()) {
      return absl::NotFoundError(
          absl::StrCat("deprecate.version: no expert ", VersionLabel(name, version)));
    }
    info = *std::move(found);
    if (info.deprecated) return info;
    T2_ASSIGN_OR_RETURN(Statement update, impl_->db->Prepare("UPDATE experts SET deprecated = 1 "
                                                             "WHERE name = ?1 AND version = ?2"));
    update.Bind(1, name).Bind(2, version);
    T2_RETURN_IF_ERROR(update.Run());
    T2_ASSIGN_OR_RETURN(
        sequence, impl_->AppendEvent(EventKind::kExpertDeprecated, name, version, "", NowUnixMs()));
    T2_RETURN_IF_ERROR(txn.Commit());
    info.deprecated = true;
  }
  impl_->Published(sequence);
  return info;
}

absl::StatusOr<Alias> ExpertStore::SetAlias(std::string_view alias, std::string_view name,
                                            int64_t version) {
  T2_RETURN_IF_ERROR(CheckName("set_alias.alias", alias));
  T2_RETURN_IF_ERROR(CheckName("set_alias.name", name));
  T2_RETURN_IF_ERROR(CheckVersion("set_alias.version", version));
  int64_t sequence = 0;
  Alias out;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db));
    T2_ASSIGN_OR_RETURN(bool taken, impl_->ExpertNameExists(alias));
    if (taken) {
      return absl::AlreadyExistsError(absl::StrCat(
          "set_alias.alias: '", AsAbsl(alias), "' is an expert's name; an alias may not share it"));
    }
    T2_ASSIGN_OR_RETURN(std::optional<ExpertInfo> target, impl_->FindVersion(name, version));
    if (!target.has_value()) {
      return absl::NotFoundError(
          absl::StrCat("set_alias.version: no expert ", VersionLabel(name, version)));
    }
    if (target->deprecated) {
      return absl::FailedPreconditionError(absl::StrCat(
          "set_alias.version: expert ", VersionLabel(name, version), " is deprecated"));
    }
    T2_ASSIGN_OR_RETURN(std::optional<Alias> current, impl_->FindAlias(alias));
    if (current.has_value() && current->target.name == name && current->target.version == version) {
      return *current;
    }
    const int64_t now = NowUnixMs();
    T2_ASSIGN_OR_RETURN(
        Statement upsert,
        impl_->db->Prepare("INSERT INTO aliases (alias, name, version, updated_unix_ms) "
                           "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(alias) DO UPDATE SET "
                           "name = excluded.name, version = excluded.version, "
                           "updated_unix_ms = excluded.updated_unix_ms"));
    upsert.Bind(1, alias).Bind(2, name).Bind(3, version).Bind(4, now);
    T2_RETURN_IF_ERROR(upsert.Run());
    T2_ASSIGN_OR_RETURN(sequence,
                        impl_->AppendEvent(EventKind::kAliasSet, alias, version, name, now));
    T2_RETURN_IF_ERROR(txn.Commit());
    out = Alias{.alias = std::string(alias),
                .target = {.name = std::string(name), .version = version, .sha256 = target->sha256},
                .updated_unix_ms = now};
  }
  impl_->Published(sequence);
  return out;
}

absl::StatusOr<Alias> ExpertStore::GetAlias(std::string_view alias) const {
  T2_RETURN_IF_ERROR(CheckName("get_alias.alias", alias));
  std::lock_guard<std::mutex> lock(impl_->mu);
  T2_ASSIGN_OR_RETURN(std::optional<Alias> found, impl_->FindAlias(alias));
  if (!found.has_value()) {
    return absl::NotFoundError(absl::StrCat("get_alias.alias: no alias '", AsAbsl(alias), "'"));
  }
  return *found;
}

absl::StatusOr<std::vector<Alias>> ExpertStore::ListAliases() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  T2_ASSIGN_OR_RETURN(Statement stmt,
                      impl_->db->Prepare("SELECT a.alias, a.name, a.version, e.sha256, "
                                         "a.updated_unix_ms FROM aliases a JOIN experts e "
                                         "ON e.name = a.name AND e.version = a.version "
                                         "ORDER BY a.alias"));
  std::vector<Alias> out;
  T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
  while (row) {
    out.push_back(Impl::AliasFromRow(stmt));
    T2_ASSIGN_OR_RETURN(row, stmt.Step());
  }
  return out;
}

absl::Status ExpertStore::DeleteAlias(std::string_view alias) {
  T2_RETURN_IF_ERROR(CheckName("delete_alias.alias", alias));
  int64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db));
    T2_ASSIGN_OR_RETURN(std::optional<Alias> found, impl_->FindAlias(alias));
    if (!found.has_value()) {
      return absl::NotFoundError(
          absl::StrCat("delete_alias.alias: no alias '", AsAbsl(alias), "'"));
    }
    T2_ASSIGN_OR_RETURN(Statement remove,
                        impl_->db->Prepare("DELETE FROM aliases WHERE alias = ?1"));
    remove.Bind(1, alias);
    T2_RETURN_IF_ERROR(remove.Run());
    T2_ASSIGN_OR_RETURN(sequence,
                        impl_->AppendEvent(EventKind::kAliasDeleted, alias, 0, "", NowUnixMs()));
    T2_RETURN_IF_ERROR(txn.Commit());
  }
  impl_->Published(sequence);
  return absl::OkStatus();
}

absl::StatusOr<Mixture> ExpertStore::PutMixture(const Mixture& mixture) {
  T2_RETURN_IF_ERROR(CheckName("mixture.name", mixture.name));
  if (mixture.experts.empty()) {
    return absl::InvalidArgumentError("mixture.spec.experts: empty");
  }
  std::set<std::pair<std::string, int64_t>> seen;
  for (size_t i = 0; i < mixture.experts.size(); ++i) {
    const ExpertRef& ref = mixture.experts[i];
    const std::string field = absl::StrCat("mixture.spec.experts[", i, "]");
    T2_RETURN_IF_ERROR(CheckName(absl::StrCat(field, ".name"), ref.name));
    T2_RETURN_IF_ERROR(CheckVersion(absl::StrCat(field, ".version"), ref.version));
    T2_RETURN_IF_ERROR(CheckSha256(absl::StrCat(field, ".sha256"), ref.sha256));
    if (!seen.insert({ref.name, ref.version}).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", VersionLabel(ref.name, ref.version), " is listed twice"));
    }
  }
  T2_RETURN_IF_ERROR(CheckAlpha(mixture));
  if (mixture.source.size() > kMaxSourceBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("mixture.source: longer than ", kMaxSourceBytes, " bytes"));
  }
  Mixture out = mixture;
  int64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db));
    for (size_t i = 0; i < mixture.experts.size(); ++i) {
      const ExpertRef& ref = mixture.experts[i];
      T2_ASSIGN_OR_RETURN(std::optional<ExpertInfo> info,
                          impl_->FindVersion(ref.name, ref.version));
      if (!info.has_value()) {
        return absl::NotFoundError(absl::StrCat("mixture.spec.experts[", i, "]: no expert ",
                                                VersionLabel(ref.name, ref.version)));
      }
      if (info->sha256 != ref.sha256) {
        return absl::InvalidArgumentError(absl::StrCat(
            "mixture.spec.experts[", i, "].sha256: ", ref.sha256, " is not the sha256 of ",
            VersionLabel(ref.name, ref.version), " (", info->sha256, ")"));
      }
    }
    out.updated_unix_ms = NowUnixMs();
    T2_ASSIGN_OR_RETURN(
        Statement upsert,
        impl_->db->Prepare("INSERT INTO mixtures (name, spec_json, source, "
                           "updated_unix_ms) VALUES (?1, ?2, ?3, ?4) "
                           "ON CONFLICT(name) DO UPDATE SET "
                           "spec_json = excluded.spec_json, source = excluded.source, "
                           "updated_unix_ms = excluded.updated_unix_ms"));
    upsert.Bind(1, out.name).Bind(2, internal::MixtureSpecToJson(out)).Bind(3, out.source);
    upsert.Bind(4, out.updated_unix_ms);
    T2_RETURN_IF_ERROR(upsert.Run());
    T2_ASSIGN_OR_RETURN(
        sequence, impl_->AppendEvent(EventKind::kMixturePut, out.name, 0, "", out.updated_unix_ms));
    T2_RETURN_IF_ERROR(txn.Commit());
  }
  impl_->Published(sequence);
  return out;
}

absl::StatusOr<Mixture> ExpertStore::GetMixture(std::string_view name) const {
  T2_RETURN_IF_ERROR(CheckName("get_mixture.name", name));
  std::lock_guard<std::mutex> lock(impl_->mu);
  T2_ASSIGN_OR_RETURN(Statement stmt,
                      impl_->db->Prepare("SELECT name, spec_json, source, updated_unix_ms "
                                         "FROM mixtures WHERE name = ?1"));
  stmt.Bind(1, name);
  T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("get_mixture.name: no mixture '", AsAbsl(name), "'"));
  }
  return impl_->MixtureFromRow(stmt);
}

absl::StatusOr<std::vector<Mixture>> ExpertStore::ListMixtures() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  T2_ASSIGN_OR_RETURN(Statement stmt,
                      impl_->db->Prepare("SELECT name, spec_json, source, updated_unix_ms "
                                         "FROM mixtures ORDER BY name"));
  std::vector<Mixture> out;
  T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
  while (row) {
    T2_ASSIGN_OR_RETURN(Mixture m, impl_->MixtureFromRow(stmt));
    out.push_back(std::move(m));
    T2_ASSIGN_OR_RETURN(row, stmt.Step());
  }
  return out;
}

absl::Status ExpertStore::DeleteMixture(std::string_view name) {
  T2_RETURN_IF_ERROR(CheckName("delete_mixture.name", name));
  int64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db));
    T2_ASSIGN_OR_RETURN(Statement remove, impl_->db->Prepare("DELETE FROM mixtures WHERE name = ?1"));
    remove.Bind(1, name);
    T2_RETURN_IF_ERROR(remove.Run());
    if (impl_->db->Changes() == 0) {
      return absl::NotFoundError(absl::StrCat("delete_mixture.name: no mixture '", AsAbsl(name), "'"));
    }
    T2_ASSIGN_OR_RETURN(sequence, impl_->AppendEvent(EventKind::kMixtureDeleted, name, 0, "", NowUnixMs()));
    T2_RETURN_IF_ERROR(txn.Commit());
  }
  impl_->Published(sequence);
  return absl::OkStatus();
}

absl::StatusOr<BaseModel> ExpertStore::RegisterBaseModel(const BaseModel& base) {
  T2_RETURN_IF_ERROR(CheckBaseModel(base));
  std::lock_guard<std::mutex> lock(impl_->mu);
  T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db));
  T2_ASSIGN_OR_RETURN(std::optional<BaseModel> existing, impl_->FindBaseModel(base.fingerprint));
  if (existing.has_value()) {
    if (*existing == base) return base;
    std::string differs = existing->name != base.name         ? "name"
                          : existing->targets != base.targets ? "targets"
                                                              : "target_ranks";
    return absl::AlreadyExistsError(absl::StrCat(
        "base_model.fingerprint: ", base.fingerprint, " is registered as '", existing->name,
        "' with targets '", existing->targets, "' and a different ", differs));
  }
  T2_ASSIGN_OR_RETURN(Statement insert,
                      impl_->db->Prepare("INSERT INTO base_models (fingerprint, name, targets, "
                                         "target_ranks, registered_unix_ms) "
                                         "VALUES (?1, ?2, ?3, ?4, ?5)"));
  insert.Bind(1, base.fingerprint).Bind(2, base.name).Bind(3, base.targets);
  insert.Bind(4, internal::RanksToJson(base.target_ranks)).Bind(5, NowUnixMs());
  T2_RETURN_IF_ERROR(insert.Run());
  T2_RETURN_IF_ERROR(txn.Commit());
  LogInfo(absl::StrCat("registry: registered base model '", base.name, "' (",
                       base.fingerprint.substr(0, 16), ", ", base.target_ranks.size(),
                       " matrices)"));
  return base;
}

absl::StatusOr<BaseModel> ExpertStore::GetBaseModel(std::string_view fingerprint) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  T2_ASSIGN_OR_RETURN(std::optional<BaseModel> found, impl_->FindBaseModel(fingerprint));
  if (!found.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("base_model.fingerprint: no base model ", AsAbsl(fingerprint.substr(0, 130))));
  }
  return *found;
}

absl::StatusOr<std::vector<Event>> ExpertStore::EventsSince(int64_t after_sequence,
                                                            int limit) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  // Sequences have no holes (AUTOINCREMENT, one per change), so events after `after_sequence`
  // are all here unless the oldest kept one is later than the next expected.
  T2_ASSIGN_OR_RETURN(std::string oldest,
                      impl_->db->QueryText("SELECT COALESCE(MIN(sequence), 0) FROM events"));
  const int64_t oldest_kept = std::atoll(oldest.c_str());
  if (oldest_kept > after_sequence + 1) {
    return absl::OutOfRangeError(absl::StrCat("watch.from_sequence: events ", after_sequence + 1,
                                              " to ", oldest_kept - 1,
                                              " are no longer kept; resync from now"));
  }
  // AUTOINCREMENT's counter, which deleted events do not lower.
  T2_ASSIGN_OR_RETURN(
      std::string newest,
      impl_->db->QueryText(
          "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)"));
  if (after_sequence > std::atoll(newest.c_str())) {
    // From another store (this one was replaced or restored from a backup): what the caller
    // saw is not this log's history.
    return absl::OutOfRangeError(absl::StrCat("watch.from_sequence: ", after_sequence,
                                              " is beyond the newest event, ", newest,
                                              "; resync from now"));
  }
  T2_ASSIGN_OR_RETURN(Statement stmt,
                      impl_->db->Prepare("SELECT sequence, kind, name, version, target, unix_ms "
                                         "FROM events WHERE sequence > ?1 "
                                         "ORDER BY sequence LIMIT ?2"));
  stmt.Bind(1, after_sequence).Bind(2, static_cast<int64_t>(std::max(limit, 1)));
  std::vector<Event> out;
  T2_ASSIGN_OR_RETURN(bool row, stmt.Step());
  while (row) {
    T2_ASSIGN_OR_RETURN(EventKind kind, ParseEventKind(stmt.Text(1)));
    out.push_back(Event{.sequence = stmt.Int(0),
                        .kind = kind,
                        .name = stmt.Text(2),
                        .version = stmt.Int(3),
                        .target = stmt.Text(4),
                        .unix_ms = stmt.Int(5)});
    T2_ASSIGN_OR_RETURN(row, stmt.Step());
  }
  return out;
}

int64_t ExpertStore::LatestSequence() const {
  std::lock_guard<std::mutex> lock(impl_->event_mu);
  return impl_->latest_sequence;
}

absl::StatusOr<std::vector<Event>> ExpertStore::WaitForEvents(
    int64_t after_sequence, std::chrono::milliseconds max_wait,
    const std::function<bool()>& cancelled, int limit) const {
  // The poll interval bounds how late a cancellation that nothing signals is noticed.
  constexpr auto kPoll = std::chrono::milliseconds(50);
  const auto deadline = std::chrono::steady_clock::now() + max_wait;
  {
    std::unique_lock<std::mutex> lock(impl_->event_mu);
    if (after_sequence > impl_->latest_sequence) {
      // Ahead of what this process has announced: either an event committed a moment ago
      // (latest_sequence follows the commit) or a caller from another store. The database
      // tells them apart (EventsSince: OutOfRange for the latter).
      lock.unlock();
      T2_RETURN_IF_ERROR(EventsSince(after_sequence, 1).status());
      lock.lock();
    }
    while (impl_->latest_sequence <= after_sequence && !impl_->closed) {
      if (cancelled && cancelled()) return absl::CancelledError("watch cancelled");
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return std::vector<Event>();
      impl_->event_cv.wait_until(lock, std::min(deadline, now + kPoll));
    }
    if (impl_->closed) return absl::CancelledError("the registry is shutting down");
  }
  if (cancelled && cancelled()) return absl::CancelledError("watch cancelled");
  return EventsSince(after_sequence, limit);
}

void ExpertStore::Close() {
  {
    std::lock_guard<std::mutex> lock(impl_->event_mu);
    impl_->closed = true;
  }
  impl_->event_cv.notify_all();
}

}  // namespace t2::store
