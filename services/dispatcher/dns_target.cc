#include "dns_target.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2::dispatcher {
namespace {

constexpr std::string_view kScheme = "dns:";

absl::StatusOr<int> ParsePort(std::string_view text, std::string_view what,
                              std::string_view target) {
  int port = 0;
  if (!absl::SimpleAtoi(AsAbsl(text), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--worker ", AsAbsl(target), ": ", AsAbsl(what),
                                                   " '", AsAbsl(text), "' is not a port 1..65535"));
  }
  return port;
}

// Sets `state` to ask only `target.server` (when one is given), quickly, without search
// domains: the name is looked up as written.
absl::Status Configure(const DnsTarget& target, absl::Duration timeout, struct __res_state& state) {
  std::memset(&state, 0, sizeof state);
  if (res_ninit(&state) != 0)
    return absl::UnavailableError("the resolver could not be initialised");
  state.options &= ~static_cast<unsigned long>(RES_DNSRCH | RES_DEFNAMES);
  state.retrans = std::max(1, static_cast<int>(std::ceil(absl::ToDoubleSeconds(timeout) / 2)));
  state.retry = 2;
  if (!target.server.empty()) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(target.server_port));
    inet_pton(AF_INET, target.server.c_str(), &addr.sin_addr);
    state.nsaddr_list[0] = addr;
    state.nscount = 1;
  }
  return absl::OkStatus();
}

}  // namespace

bool IsDnsTarget(std::string_view target) { return target.substr(0, kScheme.size()) == kScheme; }

absl::StatusOr<DnsTarget> ParseDnsTarget(std::string_view target) {
  DnsTarget out;
  out.spec = std::string(target);
  if (!IsDnsTarget(target) || target.substr(kScheme.size(), 2) != "//") {
    return absl::InvalidArgumentError(
        absl::StrCat("--worker ", AsAbsl(target),
                     ": a DNS target is dns:///NAME:PORT or dns://HOST:PORT/NAME:PORT"));
  }
  std::string_view rest = target.substr(kScheme.size() + 2);
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--worker ", AsAbsl(target), ": no '/' before the name"));
  }
  const std::string_view authority = rest.substr(0, slash);
  const std::string_view host_port = rest.substr(slash + 1);
  if (!authority.empty()) {
    const size_t colon = authority.rfind(':');
    out.server = std::string(authority.substr(0, colon));
    in_addr ignored{};
    if (inet_pton(AF_INET, out.server.c_str(), &ignored) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("--worker ", AsAbsl(target),
                                                     ": the DNS server '", out.server,
                                                     "' is not an IPv4 address"));
    }
    if (colon != std::string_view::npos) {
      T2_ASSIGN_OR_RETURN(out.server_port,
                          ParsePort(authority.substr(colon + 1), "the DNS server's port", target));
    }
  }
  const size_t colon = host_port.rfind(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--worker ", AsAbsl(target), ": the workers' port is missing (NAME:PORT)"));
  }
  out.name = std::string(host_port.substr(0, colon));
  if (out.name.empty())
    return absl::InvalidArgumentError(absl::StrCat("--worker ", AsAbsl(target), ": empty name"));
  T2_ASSIGN_OR_RETURN(out.port,
                      ParsePort(host_port.substr(colon + 1), "the workers' port", target));
  return out;
}

absl::StatusOr<std::vector<std::string>> ResolveDnsTarget(const DnsTarget& target,
                                                          absl::Duration timeout) {
  struct __res_state state;
  T2_RETURN_IF_ERROR(Configure(target, timeout, state));
  unsigned char answer[NS_MAXMSG];
  const int length =
      res_nquery(&state, target.name.c_str(), ns_c_in, ns_t_a, answer, sizeof answer);
  const int error = state.res_h_errno;
  res_nclose(&state);
  if (length < 0) {
    if (error == HOST_NOT_FOUND || error == NO_DATA) {
      return absl::NotFoundError(absl::StrCat(target.spec, ": no address for ", target.name));
    }
    return absl::UnavailableError(absl::StrCat(target.spec, ": the DNS query for ", target.name,
                                               " failed (", hstrerror(error), ")"));
  }
  ns_msg message;
  if (ns_initparse(answer, length, &message) != 0) {
    return absl::UnavailableError(absl::StrCat(target.spec, ": a malformed DNS answer"));
  }
  std::vector<std::string> out;
  for (int i = 0; i < ns_msg_count(message, ns_s_an); ++i) {
    ns_rr record;
    if (ns_parserr(&message, ns_s_an, i, &record) != 0) continue;
    if (ns_rr_type(record) != ns_t_a || ns_rr_rdlen(record) != 4)
      continue;  // CNAMEs lead to the A records
    char ip[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, ns_rr_rdata(record), ip, sizeof ip) == nullptr) continue;
    out.push_back(absl::StrCat(ip, ":", target.port));
  }
  if (out.empty())
    return absl::NotFoundError(absl::StrCat(target.spec, ": no address for ", target.name));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace t2::dispatcher
