// A minimal HTTP/1.1 client for the end-to-end tests of the coordinator's HTTP port, over raw
// sockets, so that a test can also do what real clients do badly: hang up mid-stream, or open a
// thousand streams at once. (The `openai` npm package and curl are the real clients.)
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pagedllm::testing {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // de-chunked
};

// The bytes of a request ("Connection: close" unless `headers` say otherwise).
std::string HttpRequestBytes(const std::string& method, const std::string& path,
                             const std::string& body, const std::vector<std::string>& headers = {});

// A socket connected to 127.0.0.1:port, or -1.
int ConnectLoopback(int port);

// Parses a whole response as read until the server closed the connection.
absl::StatusOr<HttpResponse> ParseHttpResponse(const std::string& raw);

// One request on a new connection, read until the server closes it.
absl::StatusOr<HttpResponse> HttpFetch(int port, const std::string& method, const std::string& path,
                                       const std::string& body = "",
                                       const std::vector<std::string>& headers = {},
                                       int timeout_ms = 60000);

// The JSON payloads of "data: ..." server-sent events, in order ("[DONE]" included as is).
std::vector<std::string> SseData(const std::string& body);

}  // namespace pagedllm::testing
