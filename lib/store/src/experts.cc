// Experts: staging and publishing a blob, resolving a name or an alias, reading, listing,
// deprecating.
#include <fstream>

#include "absl/strings/str_replace.h"
#include "crash_point.h"
#include "store_impl.h"
#include "t2/common/log.h"
#include "t2/store/expert_file.h"

namespace t2::store {

namespace fs = std::filesystem;
using internal::BlobAccess;
using internal::Database;
using internal::ExpertFromRow;
using internal::kExpertColumns;
using internal::NowUnixMs;
using internal::Statement;
using internal::Transaction;
using internal::VersionLabel;

namespace {

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

// Checks the blob against the size and sha256 its header declares; returns the sha256.
absl::StatusOr<std::string> SealAsDeclared(const PublishHeader& header, StagedBlob& blob) {
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
  return sha256;
}

// Moves the sealed blob durably to its content address; the store then owns the file.
absl::Status MoveToAddress(StagedBlob& blob, const fs::path& blobs_dir, const std::string& sha256) {
  T2_RETURN_IF_ERROR(internal::DurableRename(blob.path(), internal::BlobPath(blobs_dir, sha256)));
  BlobAccess::Release(blob);
  return absl::OkStatus();
}

}  // namespace

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
  T2_ASSIGN_OR_RETURN(std::string sha256, SealAsDeclared(header, blob));
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
      T2_RETURN_IF_ERROR(MoveToAddress(blob, impl_->blobs_dir, sha256));
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
    T2_RETURN_IF_ERROR(MoveToAddress(blob, impl_->blobs_dir, sha256));
    internal::CrashPoint("blob_renamed");
    T2_ASSIGN_OR_RETURN(sequence, impl_->InsertExpert(*info));
  }
  impl_->Published(sequence);
  LogInfo(absl::StrCat("registry: published ", VersionLabel(info->name, info->version), " (",
                       info->size_bytes, " bytes, sha256 ", info->sha256.substr(0, 12), ")",
                       info->published_by.empty() ? "" : absl::StrCat(" by ", info->published_by)));
  return *info;
}

absl::StatusOr<int64_t> ExpertStore::Impl::InsertExpert(const ExpertInfo& info) {
  Database& database = *db;
  T2_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(database));
  T2_ASSIGN_OR_RETURN(Statement insert,
                      database.Prepare(absl::StrCat(
                          "INSERT INTO experts (", kExpertColumns,
                          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?13)")));
  insert.Bind(1, info.name).Bind(2, info.version).Bind(3, info.sha256);
  insert.Bind(4, info.size_bytes).Bind(5, info.base_model).Bind(6, info.base_fingerprint);
  insert.Bind(7, info.targets).Bind(8, info.normalization).Bind(9, info.task);
  insert.Bind(10, info.metrics_json).Bind(11, info.created_at);
  insert.Bind(12, info.published_unix_ms).Bind(13, info.published_by);
  T2_RETURN_IF_ERROR(insert.Run());
  T2_ASSIGN_OR_RETURN(const int64_t sequence,
                      AppendEvent(EventKind::kExpertPublished, info.name, info.version, "",
                                  info.published_unix_ms));
  internal::CrashPoint("row_inserted");
  T2_RETURN_IF_ERROR(txn.Commit());
  internal::CrashPoint("committed");
  return sequence;
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

}  // namespace t2::store
