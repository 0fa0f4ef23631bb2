// Deterministic crash injection for the publish path's durability tests: when the variable
// T2_STORE_CRASH_AT names a step, the process kills itself with SIGKILL there, as kill -9 or
// a power cut would (no destructors, no buffered writes flushed).
//
// Steps, in the order Publish reaches them:
//   blob_written  the staged blob is complete and fsync'd in tmp/, not yet renamed
//   blob_renamed  the blob is at its content address and the folder fsync'd; no row yet
//   row_inserted  the expert row and event are inserted, the transaction not committed
//   committed     the transaction is committed; watchers not yet woken, caller not answered
#pragma once

#include <string_view>

namespace t2::store::internal {

void CrashPoint(std::string_view step);

}  // namespace t2::store::internal
