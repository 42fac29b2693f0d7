// The bytes of an HTTP/1.x response as the server writes them: the status line and headers, and
// the framing of a streamed body (chunked transfer encoding on HTTP/1.1; on HTTP/1.0 the body
// is sent as is and the connection closed after it).
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "coordinator/http/http_server.h"

namespace pagedllm::http {

struct ResponseHead {
  int status = 200;
  absl::string_view content_type;
  const HttpHeaders* headers = nullptr;  // extra headers (may be null)
  unsigned version = 11;                 // the request's: 10 or 11
  bool keep_alive = true;                // false: "Connection: close"
  bool streamed = false;                 // chunked (HTTP/1.1); else Content-Length
  size_t content_length = 0;             // when not streamed
};

// "HTTP/1.1 200 OK\r\nContent-Type: ...\r\n...\r\n\r\n". Header values with CR or LF are dropped.
std::string FormatResponseHead(const ResponseHead& head);

// One piece of a streamed body: "<hex size>\r\n<data>\r\n" on HTTP/1.1, `data` on HTTP/1.0;
// nothing for empty data (an empty chunk would end the body).
std::string FrameChunk(unsigned version, absl::string_view data);
// The end of a streamed body: "0\r\n\r\n" on HTTP/1.1, nothing on HTTP/1.0.
std::string LastChunk(unsigned version);

}  // namespace pagedllm::http
