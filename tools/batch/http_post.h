// A blocking HTTP/1.1 client for one keep-alive connection (Boost.Beast): POST a JSON body, get
// the status and body back; it reconnects when the server closed the connection between calls.
// Plain HTTP only. Not thread safe: one per thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace pagedllm::batch {

struct HttpReply {
  int status = 0;
  std::string body;
};

class HttpPoster {
 public:
  // `host` and `port` of the server; `api_key` ("" for none) goes in "Authorization: Bearer".
  HttpPoster(std::string host, std::string port, std::string api_key);
  ~HttpPoster();

  // UNAVAILABLE when the server cannot be reached or the connection broke.
  absl::StatusOr<HttpReply> Post(const std::string& path, const std::string& body);

 private:
  struct Connection;
  const std::string host_;
  const std::string port_;
  const std::string api_key_;
  std::unique_ptr<Connection> connection_;
};

// Splits "http://host:port[/...]" into host and port (default 80). INVALID_ARGUMENT otherwise.
absl::StatusOr<std::pair<std::string, std::string>> ParseServerUrl(const std::string& url);

}  // namespace pagedllm::batch
