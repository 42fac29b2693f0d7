// The build's identity, compared when a worker says hello to the coordinator: a worker of another
// build, protocol or model is refused (coordinator/worker_link/hello_validation.h).
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace pagedllm {

// "<project version>+g<git commit>" of the tree this binary was built from ("0.1.0+g0123abcd4567";
// just the project version when built outside a git checkout). Every binary of one build says the
// same; two builds of one commit with different local changes are not told apart.
std::string BuildVersion();

// FNV-1a, 64 bits, of `bytes`: the same on every host, build and run (unlike absl::Hash). A
// fingerprint for telling files and schemas apart, not a cryptographic hash.
inline uint64_t Fingerprint64(absl::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

}  // namespace pagedllm
