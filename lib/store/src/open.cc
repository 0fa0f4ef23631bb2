// Opening a store root: its file lock, the database schema and its migration, the leftovers
// of a process that died; and closing it.
#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <cstdlib>

#include "store_impl.h"
#include "t2/common/atomic_file.h"
#include "t2/common/log.h"

namespace t2::store {

namespace fs = std::filesystem;
using internal::Database;
using internal::Statement;
using internal::Transaction;

namespace {

constexpr int kSchemaVersion = 2;

// Version 2 (version 1 lacked experts.published_by: OpenDatabase adds it). Experts are
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

}  // namespace

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

void ExpertStore::Close() {
  {
    std::lock_guard<std::mutex> lock(impl_->event_mu);
    impl_->closed = true;
    for (const auto& [id, on_change] : impl_->subscribers) on_change();
  }
}

bool ExpertStore::closed() const {
  std::lock_guard<std::mutex> lock(impl_->event_mu);
  return impl_->closed;
}

std::unique_ptr<ExpertStore::Subscription> ExpertStore::Subscribe(
    std::function<void()> on_change) const {
  std::lock_guard<std::mutex> lock(impl_->event_mu);
  const int64_t id = impl_->next_subscriber++;
  impl_->subscribers.emplace(id, std::move(on_change));
  return std::unique_ptr<Subscription>(new Subscription(this, id));
}

ExpertStore::Subscription::~Subscription() {
  std::lock_guard<std::mutex> lock(store_->impl_->event_mu);
  store_->impl_->subscribers.erase(id_);
}

}  // namespace t2::store
