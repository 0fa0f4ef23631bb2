// The change log: what Watch streams read (EventsSince, LatestSequence).
#include <chrono>
#include <functional>

#include "store_impl.h"

namespace t2::store {

using internal::Statement;

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

namespace {

absl::StatusOr<EventKind> ParseEventKind(const std::string& text) {
  for (EventKind kind :
       {EventKind::kExpertPublished, EventKind::kExpertDeprecated, EventKind::kAliasSet,
        EventKind::kAliasDeleted, EventKind::kMixturePut, EventKind::kMixtureDeleted}) {
    if (text == EventKindName(kind)) return kind;
  }
  return absl::DataLossError(absl::StrCat("registry database: unknown event kind '", text, "'"));
}

}  // namespace

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

}  // namespace t2::store
