#include "coordinator/launcher/hostfile.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pagedllm::coordinator {

absl::StatusOr<std::vector<std::string>> ReadHostfileHosts(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the hostfile ", path));
  std::vector<std::string> hosts;
  std::string line;
  while (std::getline(in, line)) {
    const std::vector<std::string> words =
        absl::StrSplit(line.substr(0, line.find('#')), absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (words.empty()) continue;
    std::string host = words[0];
    if (const size_t at = host.find('@'); at != std::string::npos) host = host.substr(at + 1);
    hosts.push_back(host);
  }
  if (hosts.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the hostfile ", path, " lists no host"));
  }
  return hosts;
}

absl::StatusOr<std::vector<std::string>> ResolveHost(const std::string& host) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int error = getaddrinfo(host.c_str(), nullptr, &hints, &found); error != 0) {
    return absl::NotFoundError(
        absl::StrCat("host \"", host, "\" does not resolve: ", gai_strerror(error)));
  }
  std::vector<std::string> addresses;
  for (const addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (entry->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(entry->ai_addr)->sin_addr, text,
                sizeof(text));
    } else if (entry->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(entry->ai_addr)->sin6_addr, text,
                sizeof(text));
    } else {
      continue;
    }
    std::string address = text;
    if (absl::StartsWith(address, "::ffff:") && address.find('.') != std::string::npos) {
      address = address.substr(7);
    }
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
      addresses.push_back(address);
    }
  }
  freeaddrinfo(found);
  if (addresses.empty()) {
    return absl::NotFoundError(absl::StrCat("host \"", host, "\" has no IP address"));
  }
  return addresses;
}

absl::StatusOr<std::vector<std::string>> WorkerAddressesOf(const std::string& hostfile,
                                                           const std::string& advertise_host) {
  absl::StatusOr<std::vector<std::string>> hosts = ReadHostfileHosts(hostfile);
  if (!hosts.ok()) return hosts.status();
  hosts->push_back(advertise_host);
  std::vector<std::string> addresses;
  for (size_t i = 0; i < hosts->size(); ++i) {
    absl::StatusOr<std::vector<std::string>> resolved = ResolveHost((*hosts)[i]);
    if (!resolved.ok()) {
      return absl::Status(
          resolved.status().code(),
          absl::StrCat(i + 1 == hosts->size() ? "--advertise_host" : "--hostfile " + hostfile,
                       ": ", resolved.status().message()));
    }
    for (const std::string& address : *resolved) {
      if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
        addresses.push_back(address);
      }
    }
  }
  return addresses;
}

}  // namespace pagedllm::coordinator
