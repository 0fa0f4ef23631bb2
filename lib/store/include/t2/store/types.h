// The registry's records as plain structs: what ExpertStore takes and returns. They mirror the
// t2.v1 registry messages field for field where those exist; the registry service converts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace t2::store {

// Largest expert blob the registry accepts (the proto's limit).
inline constexpr int64_t kMaxBlobBytes = int64_t{256} << 20;

// A base model experts are checked against. `targets` is the set the worker decomposed
// ("mlp" | "attn" | "all"); `target_ranks` maps each of its target matrices (HF name) to the
// number of singular values, which is the length every expert vector for it must have.
struct BaseModel {
  std::string fingerprint;  // lowercase hex, as svf::BaseFingerprint writes it
  std::string name;
  std::string targets;
  std::map<std::string, int64_t> target_ranks;

  bool operator==(const BaseModel&) const = default;
};

// One immutable expert version. The metadata fields come from the expert file.
struct ExpertInfo {
  std::string name;
  int64_t version = 0;
  std::string sha256;  // lowercase hex of the blob: its content address
  int64_t size_bytes = 0;
  std::string base_model;
  std::string base_fingerprint;
  std::string targets;        // "mlp" | "attn" | "all"
  std::string normalization;  // "nuclear" | "none"
  std::string task;
  std::string metrics_json;
  std::string created_at;  // RFC 3339, as the trainer wrote it
  int64_t published_unix_ms = 0;
  bool deprecated = false;
  std::string published_by;  // the authenticated identity that published it ("" if none)
};

struct ExpertRef {
  std::string name;
  int64_t version = 0;
  std::string sha256;

  bool operator==(const ExpertRef&) const = default;
};

struct Alias {
  std::string alias;
  ExpertRef target;
  int64_t updated_unix_ms = 0;
};

// CEM result: weights over pinned expert versions. `alpha` has one weight per expert, or
// num_layers x experts (row-major by layer) when `per_layer`; a single expert may have none.
struct Mixture {
  std::string name;
  std::vector<ExpertRef> experts;
  std::vector<double> alpha;
  bool per_layer = false;
  std::string source;
  int64_t updated_unix_ms = 0;  // set by the store
};

enum class EventKind { kExpertPublished, kExpertDeprecated, kAliasSet, kAliasDeleted, kMixturePut, kMixtureDeleted };
std::string_view EventKindName(EventKind kind);  // "expert_published", ...

// One change. Sequence numbers start at 1, increase by one per change and survive restarts.
struct Event {
  int64_t sequence = 0;
  EventKind kind = EventKind::kExpertPublished;
  std::string name;     // expert, alias or mixture name
  int64_t version = 0;  // expert version, or the alias's new target version; else 0
  std::string target;   // alias events: the expert name it points at; else empty
  int64_t unix_ms = 0;

  bool operator==(const Event&) const = default;
};

// What a publisher declares before sending the bytes.
struct PublishHeader {
  std::string name;     // [a-z0-9][a-z0-9._-]{0,63}
  int64_t version = 0;  // >= 1
  int64_t size_bytes = 0;
  std::string sha256;  // lowercase hex
  // Who is publishing: the caller's authenticated identity, set by the registry service (never
  // taken from the client's header). Stored as ExpertInfo::published_by.
  std::string publisher;
};

}  // namespace t2::store
