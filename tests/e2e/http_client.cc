#include "tests/e2e/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pagedllm::testing {

std::string HttpRequestBytes(const std::string& method, const std::string& path,
                             const std::string& body, const std::vector<std::string>& headers) {
  std::string out = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  bool connection = false;
  for (const std::string& header : headers) {
    absl::StrAppend(&out, header, "\r\n");
    connection = connection || absl::StartsWithIgnoreCase(header, "connection:");
  }
  if (!connection) absl::StrAppend(&out, "Connection: close\r\n");
  if (!body.empty() || method == "POST") {
    absl::StrAppend(&out, "Content-Type: application/json\r\nContent-Length: ", body.size(),
                    "\r\n");
  }
  absl::StrAppend(&out, "\r\n", body);
  return out;
}

int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

absl::StatusOr<HttpResponse> ParseHttpResponse(const std::string& raw) {
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return absl::DataLossError(absl::StrCat("no complete header in ", raw.size(), " bytes: ", raw));
  }
  HttpResponse response;
  std::vector<std::string> lines = absl::StrSplit(raw.substr(0, head_end), "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &response.status)) {
    return absl::DataLossError(absl::StrCat("bad status line: ", lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    response.headers[name] = std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  std::string body = raw.substr(head_end + 4);
  if (absl::EqualsIgnoreCase(response.headers["transfer-encoding"], "chunked")) {
    std::string decoded;
    size_t at = 0;
    while (true) {
      const size_t line_end = body.find("\r\n", at);
      if (line_end == std::string::npos) return absl::DataLossError("a chunk size line is cut");
      size_t size = 0;
      if (!absl::SimpleHexAtoi(body.substr(at, line_end - at), &size)) {
        return absl::DataLossError("bad chunk size");
      }
      if (size == 0) break;
      if (line_end + 2 + size + 2 > body.size()) return absl::DataLossError("a chunk is cut");
      decoded += body.substr(line_end + 2, size);
      at = line_end + 2 + size + 2;
    }
    body = std::move(decoded);
  }
  response.body = std::move(body);
  return response;
}

absl::StatusOr<HttpResponse> HttpFetch(int port, const std::string& method, const std::string& path,
                                       const std::string& body,
                                       const std::vector<std::string>& headers, int timeout_ms) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot connect to port ", port));
  const std::string request = HttpRequestBytes(method, path, body, headers);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return absl::UnavailableError("send failed");
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buffer[65536];
  while (true) {
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          deadline - std::chrono::steady_clock::now())
                                          .count());
    pollfd item{fd, POLLIN, 0};
    if (left <= 0 || poll(&item, 1, left) <= 0) {
      close(fd);
      return absl::DeadlineExceededError(
          absl::StrCat(method, " ", path, ": no end after ", timeout_ms, " ms; got: ", raw));
    }
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    raw.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return ParseHttpResponse(raw);
}

std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> data;
  for (absl::string_view event : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&event, "data: ")) data.emplace_back(event);
  }
  return data;
}

}  // namespace pagedllm::testing
