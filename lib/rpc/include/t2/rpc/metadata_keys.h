// Metadata keys t2's services send one another beside a call's messages and status.
#pragma once

#include <grpcpp/client_context.h>

#include <charconv>
#include <cstdint>
#include <optional>

namespace t2::rpc {

// Trailing metadata on an UNAVAILABLE answer that says whose outage it is. A worker that cannot
// reach the registry to load an expert is alive and serves other requests: it answers
// UNAVAILABLE with this key set to kUnavailableCauseRegistry, and the dispatcher tries
// another worker without marking this one down (a registry outage used to take every worker
// out of the pool).
inline constexpr char kUnavailableCauseKey[] = "t2-unavailable-cause";
inline constexpr char kUnavailableCauseRegistry[] = "registry";

// Initial metadata of Registry.Watch, sent once the registry has subscribed the caller: every
// change after the sequence it carries (decimal) will be streamed. Until a client has seen it,
// it must not trust a cached lookup to be kept fresh by the stream (a change in between would
// never be announced); a client that reconnects asks for the changes after that sequence (or
// after the last event it got), so none made while it was away is lost.
inline constexpr char kWatchEstablishedKey[] = "t2-watch-established";

// The sequence a finished-or-open Watch call's initial metadata carries; nullopt when the
// registry has not (or not yet) said the watch is established.
inline std::optional<int64_t> WatchStartSequence(const grpc::ClientContext& context) {
  const auto& metadata = context.GetServerInitialMetadata();
  auto it = metadata.find(kWatchEstablishedKey);
  if (it == metadata.end()) return std::nullopt;
  int64_t sequence = 0;
  const auto [end, error] =
      std::from_chars(it->second.data(), it->second.data() + it->second.size(), sequence);
  if (error != std::errc() || end != it->second.data() + it->second.size() || sequence < 0)
    return std::nullopt;
  return sequence;
}

}  // namespace t2::rpc
