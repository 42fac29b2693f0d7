#include "tools/bench/flag_check.h"

#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace pagedllm::bench {
namespace {

std::set<std::string>& Given() {
  static std::set<std::string> names;
  return names;
}

}  // namespace

const std::set<std::string>& FlagsGiven() { return Given(); }

absl::Status CheckFlagSyntax(int argc, char** argv) {
  Given().clear();
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") return absl::OkStatus();
    if (arg.size() < 2 || arg[0] != '-') continue;  // a positional argument: the caller's
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    const size_t equals = arg.find('=');
    const std::string name(arg.substr(0, equals));
    if (name == "flagfile" || name == "fromenv" || name == "tryfromenv" || name == "undefok") {
      return absl::OkStatus();
    }
    if (absl::StartsWith(name, "help") || name == "version" || name == "only_check_args") continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && equals == absl::string_view::npos) {
      const absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) {
        Given().insert(name.substr(2));
        continue;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    Given().insert(name);
    std::string value;
    if (equals != absl::string_view::npos) {
      value = std::string(arg.substr(equals + 1));
    } else if (flag->IsOfType<bool>()) {
      continue;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, "=", value, ": ", error));
    }
  }
  return absl::OkStatus();
}

}  // namespace pagedllm::bench
