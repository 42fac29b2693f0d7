#include "coordinator/http/http_wire.h"

#include "absl/strings/str_cat.h"
#include "boost/beast/http/status.hpp"

namespace pagedllm::http {

namespace {

bool SafeHeaderText(absl::string_view text) {
  return text.find_first_of("\r\n") == absl::string_view::npos;
}

}  // namespace

std::string FormatResponseHead(const ResponseHead& head) {
  const boost::beast::string_view reason =
      boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(head.status));
  std::string out = absl::StrCat(head.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ", head.status, " ",
                                 absl::string_view(reason.data(), reason.size()), "\r\n");
  absl::StrAppend(&out, "Server: pagedllm\r\n");
  if (!head.content_type.empty() && SafeHeaderText(head.content_type)) {
    absl::StrAppend(&out, "Content-Type: ", head.content_type, "\r\n");
  }
  if (head.headers != nullptr) {
    for (const auto& [name, value] : *head.headers) {
      if (SafeHeaderText(name) && SafeHeaderText(value)) {
        absl::StrAppend(&out, name, ": ", value, "\r\n");
      }
    }
  }
  const bool chunked = head.streamed && head.version != 10;
  if (chunked) {
    absl::StrAppend(&out, "Transfer-Encoding: chunked\r\n");
  } else if (!head.streamed) {
    absl::StrAppend(&out, "Content-Length: ", head.content_length, "\r\n");
  }
  // HTTP/1.0 streams end when the connection closes.
  const bool keep_alive = head.keep_alive && (chunked || !head.streamed);
  if (!keep_alive) {
    absl::StrAppend(&out, "Connection: close\r\n");
  } else if (head.version == 10) {
    absl::StrAppend(&out, "Connection: keep-alive\r\n");
  }
  absl::StrAppend(&out, "\r\n");
  return out;
}

std::string FrameChunk(unsigned version, absl::string_view data) {
  if (data.empty()) return "";
  if (version == 10) return std::string(data);
  return absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n");
}

std::string LastChunk(unsigned version) { return version == 10 ? "" : "0\r\n\r\n"; }

}  // namespace pagedllm::http
