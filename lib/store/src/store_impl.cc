#include "store_impl.h"

#include <chrono>

namespace t2::store::internal {

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

std::string VersionLabel(std::string_view name, int64_t version) {
  return absl::StrCat("'", AsAbsl(name), "' version ", version);
}

}  // namespace t2::store::internal
