// Workers named by DNS: a `--worker dns:///NAME:PORT` (the system's resolver) or
// `dns://HOST:PORT/NAME:PORT` (that DNS server, as gRPC spells an authority) stands for every
// IPv4 address NAME resolves to, each one worker at PORT. A Kubernetes headless Service
// answers with one address per ready pod, so the dispatcher follows the workers as they come
// and go by resolving again (WorkerPool).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace t2::dispatcher {

struct DnsTarget {
  std::string server;  // "" = the system's resolver configuration
  int server_port = 53;
  std::string name;  // the name to resolve
  int port = 0;      // the workers' port
  std::string spec;  // as given, for logs
};

// True for a `dns:` target (which ParseDnsTarget must then accept).
bool IsDnsTarget(std::string_view target);
// INVALID_ARGUMENT naming what is wrong: no port, a bad port, an empty name, an authority
// that is not an IPv4 HOST:PORT.
absl::StatusOr<DnsTarget> ParseDnsTarget(std::string_view target);

// The target's workers, "a.b.c.d:PORT", sorted: every A record of its name. NOT_FOUND when
// the name does not exist or has no address, UNAVAILABLE when the server does not answer
// within `timeout`.
absl::StatusOr<std::vector<std::string>> ResolveDnsTarget(const DnsTarget& target,
                                                          absl::Duration timeout);

}  // namespace t2::dispatcher
