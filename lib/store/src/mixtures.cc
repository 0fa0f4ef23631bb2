// Mixtures: named adapter specs (several experts with weights), written by Adapt and publishers.
#include <cmath>
#include <set>

#include "store_impl.h"

namespace t2::store {

using internal::NowUnixMs;
using internal::Statement;
using internal::Transaction;
using internal::VersionLabel;

namespace {

constexpr size_t kMaxSourceBytes = 64 << 10;  // a mixture's `source` text

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
    T2_ASSIGN_OR_RETURN(Statement remove,
                        impl_->db->Prepare("DELETE FROM mixtures WHERE name = ?1"));
    remove.Bind(1, name);
    T2_RETURN_IF_ERROR(remove.Run());
    if (impl_->db->Changes() == 0) {
      return absl::NotFoundError(
          absl::StrCat("delete_mixture.name: no mixture '", AsAbsl(name), "'"));
    }
    T2_ASSIGN_OR_RETURN(sequence,
                        impl_->AppendEvent(EventKind::kMixtureDeleted, name, 0, "", NowUnixMs()));
    T2_RETURN_IF_ERROR(txn.Commit());
  }
  impl_->Published(sequence);
  return absl::OkStatus();
}

}  // namespace t2::store
