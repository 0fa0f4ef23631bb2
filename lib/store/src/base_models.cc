// Base models: the fingerprints and target ranks experts are checked against.
#include "store_impl.h"
#include "t2/common/log.h"
#include "t2/store/expert_file.h"

namespace t2::store {

using internal::NowUnixMs;
using internal::Statement;
using internal::Transaction;

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

}  // namespace t2::store
