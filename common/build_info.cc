#include "common/build_info.h"

#include "build_version.inc"  // generated: #define PAGEDLLM_BUILD_VERSION "..."

namespace pagedllm {

std::string BuildVersion() { return PAGEDLLM_BUILD_VERSION; }

}  // namespace pagedllm
