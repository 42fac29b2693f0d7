#include "coordinator/launcher/cluster_config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/build_info.h"
#include "yaml-cpp/yaml.h"

namespace pagedllm::coordinator {

namespace {

const absl::flat_hash_set<std::string>* given_flags = nullptr;

absl::Status SetFlagUnlessGiven(const std::string& path, const std::string& name,
                                const std::string& value) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unknown key \"", name, "\""));
  }
  if (given_flags->contains(name)) return absl::OkStatus();
  std::string error;
  if (!flag->ParseFrom(value, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": key \"", name, "\" = \"", value, "\": ", error));
  }
  return absl::OkStatus();
}

}  // namespace

absl::flat_hash_set<std::string> FlagsOnCommandLine(int argc, char** argv) {
  absl::flat_hash_set<std::string> names;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.rfind("-", 0) != 0) continue;
    arg = arg.substr(arg.rfind("--", 0) == 0 ? 2 : 1);
    arg = arg.substr(0, arg.find('='));
    names.insert(arg);
    if (arg.rfind("no", 0) == 0) names.insert(arg.substr(2));
  }
  return names;
}

absl::Status ApplyClusterConfig(const std::string& path,
                                const absl::flat_hash_set<std::string>& given_on_command_line,
                                const std::string& hostfile_dir) {
  given_flags = &given_on_command_line;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a YAML map"));
  try {
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      const YAML::Node& value = entry.second;
      if (key == "hosts") {
        std::string hostfile_text;
        for (const YAML::Node& host : value) {
          if (!host["host"]) {
            return absl::InvalidArgumentError(absl::StrCat(path, ": every hosts entry needs host"));
          }
          hostfile_text += host["host"].as<std::string>();
          if (host["slots"]) hostfile_text += " slots=" + host["slots"].as<std::string>();
          hostfile_text += "\n";
        }
        // Named by its contents and written whole (renamed into place): coordinators started
        // with other files never share one, those started with the same file share its text.
        const std::string hostfile = absl::StrCat(hostfile_dir, "/pagedllm-hostfile-",
                                                  absl::Hex(Fingerprint64(hostfile_text)));
        const std::string partial = absl::StrCat(hostfile, ".", getpid());
        std::ofstream(partial) << hostfile_text;
        if (std::rename(partial.c_str(), hostfile.c_str()) != 0) {
          return absl::InternalError(absl::StrCat(path, ": cannot write the hostfile ", hostfile));
        }
        if (absl::Status s = SetFlagUnlessGiven(path, "hostfile", hostfile); !s.ok()) return s;
      } else if (key == "mpirun_args") {
        std::vector<std::string> args;
        for (const YAML::Node& arg : value) args.push_back(arg.as<std::string>());
        if (absl::Status s = SetFlagUnlessGiven(path, "mpirun_args", absl::StrJoin(args, " "));
            !s.ok()) {
          return s;
        }
      } else if (key == "env") {
        std::vector<std::string> pairs;
        for (const auto& var : value) {
          pairs.push_back(var.first.as<std::string>() + "=" + var.second.as<std::string>());
        }
        if (absl::Status s = SetFlagUnlessGiven(path, "worker_env", absl::StrJoin(pairs, ","));
            !s.ok()) {
          return s;
        }
      } else {
        if (!value.IsScalar()) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": key \"", key, "\" must be a single value"));
        }
        if (absl::Status s = SetFlagUnlessGiven(path, key, value.as<std::string>()); !s.ok()) {
          return s;
        }
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace pagedllm::coordinator
