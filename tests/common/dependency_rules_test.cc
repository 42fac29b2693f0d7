// Keeps the dependency direction of DESIGN.md true by reading every #include line:
//   coordinator -> proto, common (never worker, kernels, parallel); inside the coordinator only
//   the edges (the gRPC frontend, the OpenAI HTTP API, the worker link and main) touch generated
//   gRPC types; the HTTP transport (coordinator/http) knows nothing of the coordinator;
//   worker -> parallel -> kernels interfaces -> common; kernels -> common only; the CPU and CUDA
//   backends never include each other; text (the tokenizer) -> common only, and only the
//   coordinator and tools use it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Include {
  std::string file;  // relative to the repository root
  std::string header;
};

std::vector<Include> IncludesUnder(const std::string& dir) {
  std::vector<Include> includes;
  const fs::path root(PAGEDLLM_SOURCE_DIR);
  const std::regex include_line(R"re(^\s*#\s*include\s*"([^"]+)")re");
  for (const auto& entry : fs::recursive_directory_iterator(root / dir)) {
    const std::string ext = entry.path().extension().string();
    if (ext != ".h" && ext != ".cc" && ext != ".cu" && ext != ".cuh") continue;
    std::ifstream in(entry.path());
    std::string line;
    std::smatch match;
    while (std::getline(in, line)) {
      if (std::regex_search(line, match, include_line)) {
        includes.push_back({fs::relative(entry.path(), root).string(), match[1]});
      }
    }
  }
  return includes;
}

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

bool IsOurs(const std::string& header) {
  for (const char* dir :
       {"common/", "kernels/", "parallel/", "worker/", "coordinator/", "text/", "pagedllm/"}) {
    if (StartsWith(header, dir)) return true;
  }
  return false;
}

TEST(DependencyRulesTest, CoordinatorNeverIncludesWorkerKernelsOrParallel) {
  const auto includes = IncludesUnder("coordinator");
  ASSERT_FALSE(includes.empty());
  for (const Include& include : includes) {
    for (const char* banned : {"worker/", "kernels/", "parallel/"}) {
      EXPECT_FALSE(StartsWith(include.header, banned))
          << include.file << " includes " << include.header;
    }
  }
}

TEST(DependencyRulesTest, OnlyTheCoordinatorEdgesTouchGeneratedProtoTypes) {
  for (const Include& include : IncludesUnder("coordinator")) {
    if (!StartsWith(include.header, "pagedllm/")) continue;
    const bool edge = StartsWith(include.file, "coordinator/frontend/") ||
                      StartsWith(include.file, "coordinator/openai/") ||
                      StartsWith(include.file, "coordinator/worker_link/") ||
                      include.file == "coordinator/main.cc";
    EXPECT_TRUE(edge) << include.file << " includes " << include.header;
  }
}

TEST(DependencyRulesTest, HttpTransportDependsOnlyOnCommon) {
  for (const Include& include : IncludesUnder("coordinator/http")) {
    for (const char* banned : {"coordinator/engine", "coordinator/frontend", "coordinator/openai",
                               "coordinator/scheduler", "pagedllm/", "text/"}) {
      EXPECT_FALSE(StartsWith(include.header, banned))
          << include.file << " includes " << include.header;
    }
  }
}

TEST(DependencyRulesTest, WorkerNeverIncludesCoordinator) {
  for (const Include& include : IncludesUnder("worker")) {
    EXPECT_FALSE(StartsWith(include.header, "coordinator/"))
        << include.file << " includes " << include.header;
  }
}

TEST(DependencyRulesTest, KernelsDependOnlyOnCommon) {
  for (const Include& include : IncludesUnder("kernels")) {
    if (!IsOurs(include.header)) continue;
    EXPECT_TRUE(StartsWith(include.header, "kernels/") || StartsWith(include.header, "common/"))
        << include.file << " includes " << include.header;
  }
}

// The backends share only what lives in kernels/ itself (interfaces, argument checks, sampling
// math): neither includes the other's files.
TEST(DependencyRulesTest, CpuAndCudaBackendsNeverIncludeEachOther) {
  for (const auto& [dir, banned] :
       {std::pair{"kernels/cpu", "kernels/cuda/"}, std::pair{"kernels/cuda", "kernels/cpu/"}}) {
    const auto includes = IncludesUnder(dir);
    ASSERT_FALSE(includes.empty()) << dir;
    for (const Include& include : includes) {
      EXPECT_FALSE(StartsWith(include.header, banned))
          << include.file << " includes " << include.header;
    }
  }
}

TEST(DependencyRulesTest, ParallelUsesOnlyKernelInterfaces) {
  for (const Include& include : IncludesUnder("parallel")) {
    if (!IsOurs(include.header)) continue;
    const bool allowed = StartsWith(include.header, "parallel/") ||
                         StartsWith(include.header, "common/") ||
                         include.header == "kernels/tensor.h" ||
                         include.header == "kernels/device.h" || include.header == "kernels/ops.h";
    EXPECT_TRUE(allowed) << include.file << " includes " << include.header;
  }
}

TEST(DependencyRulesTest, TextDependsOnlyOnCommon) {
  const auto includes = IncludesUnder("text");
  ASSERT_FALSE(includes.empty());
  for (const Include& include : includes) {
    if (!IsOurs(include.header)) continue;
    EXPECT_TRUE(StartsWith(include.header, "text/") || StartsWith(include.header, "common/"))
        << include.file << " includes " << include.header;
  }
}

TEST(DependencyRulesTest, WorkerNeverIncludesText) {
  for (const Include& include : IncludesUnder("worker")) {
    EXPECT_FALSE(StartsWith(include.header, "text/"))
        << include.file << " includes " << include.header;
  }
}

TEST(DependencyRulesTest, CommonDependsOnNothingOfOurs) {
  for (const Include& include : IncludesUnder("common")) {
    if (!IsOurs(include.header)) continue;
    EXPECT_TRUE(StartsWith(include.header, "common/"))
        << include.file << " includes " << include.header;
  }
}

}  // namespace
