#include "coordinator/launcher/worker_launcher.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"

namespace pagedllm::coordinator {

WorkerLauncher::~WorkerLauncher() { Stop(absl::Seconds(5)); }

absl::Status WorkerLauncher::Start(const std::vector<std::string>& argv,
                                   std::function<void(const std::string&)> on_exit,
                                   const std::vector<std::string>& env) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  // The child's environment, made before fork (the child may only exec).
  std::vector<std::string> environment = env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string variable(*entry);
    const std::string name = variable.substr(0, variable.find('=') + 1);
    bool replaced = false;
    for (const std::string& given : env) replaced = replaced || absl::StartsWith(given, name);
    if (!replaced) environment.push_back(variable);
  }
  std::vector<char*> envp;
  for (const std::string& variable : environment) {
    envp.push_back(const_cast<char*>(variable.c_str()));
  }
  envp.push_back(nullptr);
  PAGEDLLM_LOG(INFO) << "launching workers: " << absl::StrJoin(argv, " ");
  int output[2];
  if (pipe(output) != 0) {
    return absl::InternalError(absl::StrCat("pipe failed: ", std::strerror(errno)));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(output[0]);
    close(output[1]);
    return absl::InternalError(absl::StrCat("fork failed: ", std::strerror(errno)));
  }
  if (pid == 0) {
    setpgid(0, 0);  // own process group: Stop() signals every worker at once
    dup2(output[1], STDOUT_FILENO);
    dup2(output[1], STDERR_FILENO);
    close(output[0]);
    close(output[1]);
    // Signals blocked in the coordinator would stay blocked in mpirun: unblock them.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
    execvpe(args[0], args.data(), envp.data());
    std::fprintf(stderr, "pagedllm: cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  close(output[1]);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pid_ = pid;
    on_exit_ = std::move(on_exit);
  }
  relay_ = std::thread([this, fd = output[0]] { Relay(fd); });
  watcher_ = std::thread([this] { Watch(); });
  return absl::OkStatus();
}

void WorkerLauncher::Relay(int fd) {
  std::string pending;
  char buffer[4096];
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_relay_) break;
    }
    pollfd ready = {fd, POLLIN, 0};
    if (poll(&ready, 1, 100) <= 0) continue;
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // every writer is gone
    std::fwrite(buffer, 1, static_cast<size_t>(n), stderr);
    std::fflush(stderr);
    pending.append(buffer, static_cast<size_t>(n));
    for (size_t end = pending.find('\n'); end != std::string::npos; end = pending.find('\n')) {
      const std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      // A worker's error line, in either log format.
      const bool worker = line.find("worker[") != std::string::npos;
      if (worker &&
          (absl::StartsWith(line, "E ") || line.find("\"level\":\"error\"") != std::string::npos)) {
        std::lock_guard<std::mutex> lock(mutex_);
        last_error_line_ = line;
      }
    }
  }
  close(fd);
  std::lock_guard<std::mutex> lock(mutex_);
  relay_done_ = true;
  relayed_.notify_all();
}

void WorkerLauncher::Watch() {
  int status = 0;
  pid_t pid;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pid = pid_;
  }
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string description =
      WIFEXITED(status)
          ? absl::StrCat("worker job (mpirun pid ", pid, ") exited with status ",
                         WEXITSTATUS(status))
          : absl::StrCat("worker job (mpirun pid ", pid, ") killed by signal ", WTERMSIG(status));
  std::function<void(const std::string&)> on_exit;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    // The job's last words arrive a moment after it exits (at once, unless a stray process
    // still holds the pipe).
    relayed_.wait_for(lock, std::chrono::milliseconds(500), [this] { return relay_done_; });
    if (!last_error_line_.empty()) {
      absl::StrAppend(&description, "; the last error a worker logged: ", last_error_line_);
    }
    exited_ = true;
    if (!stopping_) on_exit = on_exit_;
  }
  PAGEDLLM_LOG(INFO) << description;
  if (on_exit) on_exit(description);
}

bool WorkerLauncher::running() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pid_ > 0 && !exited_;
}

void WorkerLauncher::Stop(absl::Duration grace) {
  pid_t pid;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    pid = pid_;
  }
  if (pid <= 0) return;
  const auto wait_exit = [&](absl::Duration timeout) {
    const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
    while (running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return !running();
  };
  if (!wait_exit(grace)) {
    PAGEDLLM_LOG(WARNING) << "workers did not exit within " << absl::FormatDuration(grace)
                          << ": sending SIGTERM to process group " << pid;
    kill(-pid, SIGTERM);
    kill(-pid, SIGCONT);  // a stopped worker handles SIGTERM only once it runs again
    if (!wait_exit(absl::Seconds(5))) {
      PAGEDLLM_LOG(WARNING) << "sending SIGKILL to process group " << pid;
      kill(-pid, SIGKILL);
      wait_exit(absl::Seconds(5));
    }
  }
  // mpirun may be gone while an orphaned rank lingers: clear the group either way.
  kill(-pid, SIGKILL);
  if (watcher_.joinable()) watcher_.join();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_relay_ = true;
  }
  if (relay_.joinable()) relay_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  pid_ = -1;
}

}  // namespace pagedllm::coordinator
