#include "tools/batch/http_post.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace pagedllm::batch {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct HttpPoster::Connection {
  net::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  bool open = false;
};

HttpPoster::HttpPoster(std::string host, std::string port, std::string api_key)
    : host_(std::move(host)),
      port_(std::move(port)),
      api_key_(std::move(api_key)),
      connection_(std::make_unique<Connection>()) {}

HttpPoster::~HttpPoster() = default;

absl::StatusOr<HttpReply> HttpPoster::Post(const std::string& path, const std::string& body) {
  // A kept-alive connection the server has closed fails at once: one fresh try then.
  for (int attempt = 0; attempt < 2; ++attempt) {
    Connection& c = *connection_;
    beast::error_code ec;
    if (!c.open) {
      tcp::resolver resolver(c.ioc);
      const auto endpoints = resolver.resolve(host_, port_, ec);
      if (!ec) c.stream.connect(endpoints, ec);
      if (ec) {
        return absl::UnavailableError(
            absl::StrCat("cannot connect to ", host_, ":", port_, ": ", ec.message()));
      }
      c.stream.socket().set_option(tcp::no_delay(true), ec);
      c.open = true;
      c.buffer.clear();
    }
    bhttp::request<bhttp::string_body> request(bhttp::verb::post, path, 11);
    request.set(bhttp::field::host, host_);
    request.set(bhttp::field::content_type, "application/json");
    if (!api_key_.empty()) request.set(bhttp::field::authorization, "Bearer " + api_key_);
    request.body() = body;
    request.prepare_payload();
    bhttp::write(c.stream, request, ec);
    bhttp::response<bhttp::string_body> response;
    if (!ec) {
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(1ull << 30);
      bhttp::read(c.stream, c.buffer, parser, ec);
      if (!ec) response = parser.release();
    }
    if (ec) {
      c.stream.socket().close(ec);
      c.open = false;
      if (attempt == 0) continue;
      return absl::UnavailableError(
          absl::StrCat("POST ", path, " to ", host_, ":", port_, ": ", ec.message()));
    }
    if (!response.keep_alive()) {
      c.stream.socket().close(ec);
      c.open = false;
    }
    return HttpReply{static_cast<int>(response.result_int()), std::move(response.body())};
  }
  return absl::UnavailableError("unreachable");
}

absl::StatusOr<std::pair<std::string, std::string>> ParseServerUrl(const std::string& url) {
  std::string rest = url;
  if (absl::StartsWith(rest, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server ", url, ": https is not supported by pagedllm-batch; use http"));
  }
  if (absl::StartsWith(rest, "http://")) rest = rest.substr(7);
  rest = rest.substr(0, rest.find('/'));
  if (rest.empty()) return absl::InvalidArgumentError(absl::StrCat("--server ", url, ": no host"));
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return std::make_pair(rest, std::string("80"));
  return std::make_pair(rest.substr(0, colon), rest.substr(colon + 1));
}

}  // namespace pagedllm::batch
