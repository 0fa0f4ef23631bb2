// The registry's storage: experts, aliases, mixtures, base models and the change log of one
// registry, in a folder:
//
//   <root>/registry.db            SQLite (WAL): every record and the event log
//   <root>/blobs/<sha[0:2]>/<sha>  expert files, content-addressed by sha256
//   <root>/tmp/                   blobs being received; emptied on open
//   <root>/LOCK                   flock'd while a store is open: one process per root
//
// Durability: Publish makes the blob durable at its content address (fsync of the file, the
// rename, the folder) before the one transaction that inserts its row and event, so a crash
// at any point leaves the version either absent or complete. A blob with no row is garbage and
// is removed on open. Every read of a blob re-checks its sha256; a damaged blob is reported as
// DataLoss and never handed out.
//
// Errors are absl::Status; messages start with the request field they are about
// ("publish.header.sha256: ..."). InvalidArgument for bad input, NotFound for unknown names,
// AlreadyExists for a conflicting record, FailedPrecondition for a missing base model or a
// deprecated target, DataLoss for damaged storage.
//
// Thread safety: every method may be called from any thread. Writes are serialised; blob
// hashing and expert-file checks run outside the lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "t2/store/blob.h"
#include "t2/store/types.h"

namespace t2::store {

struct StoreOptions {
  std::filesystem::path root;              // created if missing
  int64_t max_blob_bytes = kMaxBlobBytes;  // at most kMaxBlobBytes
  bool remove_unreferenced_blobs = true;   // on open; off only to inspect a crashed store
  // The change log keeps this many newest events; older ones are dropped as new ones come, so
  // that the table does not grow forever. A watcher that fell further behind is told to
  // resync (EventsSince: OutOfRange).
  int64_t max_events = 100'000;

  absl::Status Validate() const;
};

// An expert version with its blob, checked against its sha256 just now.
struct ExpertBlob {
  ExpertInfo info;
  std::filesystem::path path;  // read-only; stays valid while the store is open
};

class ExpertStore {
 public:
  // Opens (or creates) the store at options.root. FailedPrecondition if another process has
  // it open, or if the database was written by a newer schema.
  static absl::StatusOr<std::unique_ptr<ExpertStore>> Open(const StoreOptions& options);
  ~ExpertStore();
  ExpertStore(const ExpertStore&) = delete;
  ExpertStore& operator=(const ExpertStore&) = delete;

  // --- Experts -------------------------------------------------------------------------------

  // A place to receive a blob's bytes before Publish (no size known yet).
  absl::StatusOr<StagedBlob> StageBlob();
  // StageBlob + a copy of the file at `path`.
  absl::StatusOr<StagedBlob> StageFile(const std::filesystem::path& path);

  // Publishes `blob` as header.name / header.version once its size and sha256 match the
  // header and it is a valid expert file for a registered base model. The same name+version
  // with the same sha256 again returns the stored info (no new event; if the stored blob is
  // damaged, these bytes replace it); with another sha256 it is AlreadyExists. Consumes
  // `blob` in every case.
  absl::StatusOr<ExpertInfo> Publish(const PublishHeader& header, StagedBlob blob);

  // version 0: `name_or_alias`'s alias target if it is an alias, else the newest version of
  // that expert that is not deprecated. version >= 1: that version of the expert (which may
  // be deprecated). Does not touch the blob. Errors name the fields as `request`.name and
  // `request`.version (the RPC whose fields they were).
  absl::StatusOr<ExpertInfo> ResolveExpert(std::string_view name_or_alias, int64_t version,
                                           std::string_view request = "get") const;
  // ResolveExpert, then checks the blob's sha256 (DataLoss if it does not match).
  absl::StatusOr<ExpertBlob> GetExpert(std::string_view name_or_alias, int64_t version) const;
  // The blob of `info` (from ResolveExpert), checked, for streaming.
  absl::StatusOr<BlobReader> OpenBlob(const ExpertInfo& info) const;

  // Ordered by name, then version. `name` empty: every expert.
  absl::StatusOr<std::vector<ExpertInfo>> ListExperts(std::string_view name,
                                                      bool include_deprecated) const;
  // Idempotent: deprecating a deprecated version returns it unchanged, with no event.
  absl::StatusOr<ExpertInfo> Deprecate(std::string_view name, int64_t version);

  // --- Aliases -------------------------------------------------------------------------------

  // Creates or moves `alias` onto name/version, which must exist and not be deprecated. An
  // alias may not have an expert's name.
  absl::StatusOr<Alias> SetAlias(std::string_view alias, std::string_view name, int64_t version);
  absl::StatusOr<Alias> GetAlias(std::string_view alias) const;
  absl::StatusOr<std::vector<Alias>> ListAliases() const;  // by alias
  absl::Status DeleteAlias(std::string_view alias);        // NotFound if absent

  // --- Mixtures ------------------------------------------------------------------------------

  // Creates or replaces a mixture. Every referenced version must exist with that sha256;
  // alpha has K entries (or none for a single expert), or a multiple of K when per_layer;
  // every weight is finite and >= 0 and each row sums to > 0.
  absl::StatusOr<Mixture> PutMixture(const Mixture& mixture);
  absl::StatusOr<Mixture> GetMixture(std::string_view name) const;
  absl::StatusOr<std::vector<Mixture>> ListMixtures() const;  // by name
  absl::Status DeleteMixture(std::string_view name);          // NotFound if absent

  // --- Base models ---------------------------------------------------------------------------

  // Idempotent; another definition under the same fingerprint is AlreadyExists. No event
  // (the change stream has no kind for it).
  absl::StatusOr<BaseModel> RegisterBaseModel(const BaseModel& base);
  absl::StatusOr<BaseModel> GetBaseModel(std::string_view fingerprint) const;

  // --- Change log ----------------------------------------------------------------------------

  // Events with sequence > after_sequence, oldest first, at most `limit`. OutOfRange when some
  // of them were dropped (StoreOptions::max_events) or after_sequence is beyond this log's
  // newest (a caller from another store): the caller must resync from now.
  absl::StatusOr<std::vector<Event>> EventsSince(int64_t after_sequence, int limit = 1000) const;
  // The sequence of the newest event (0 when there is none).
  int64_t LatestSequence() const;
  // Marks the change log closed (for server shutdown) and tells every subscriber. Other
  // methods keep working.
  void Close();
  bool closed() const;

  // News of the change log (a Watch stream waits for it without a thread): the callback
  // runs after each new event and at Close(), until the Subscription is destroyed.
  // It runs with the log's lock held, so it must only pass the news on (to an executor) and
  // never call into the store; destroying the Subscription waits for a call in progress.
  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    friend class ExpertStore;
    Subscription(const ExpertStore* store, int64_t id) : store_(store), id_(id) {}
    const ExpertStore* store_;
    int64_t id_;
  };
  [[nodiscard]] std::unique_ptr<Subscription> Subscribe(std::function<void()> on_change) const;

  const std::filesystem::path& root() const;

 private:
  struct Impl;
  explicit ExpertStore(std::unique_ptr<Impl> impl);
  // Parses the staged expert file and checks it against its base model; the info to store.
  absl::StatusOr<ExpertInfo> CheckExpertBlob(const PublishHeader& header, const std::string& sha256,
                                             const std::filesystem::path& path) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace t2::store
