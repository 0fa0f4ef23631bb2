// Aliases: movable names pointing at one expert version.
#include "store_impl.h"

namespace t2::store {

using internal::NowUnixMs;
using internal::Statement;
using internal::Transaction;
using internal::VersionLabel;

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

}  // namespace t2::store
