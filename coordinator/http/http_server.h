// HttpServer: an asynchronous HTTP/1.1 server (Boost.Beast over Asio, plain TCP or TLS) for the
// coordinator's OpenAI-compatible API. A fixed number of threads serves every connection; each
// connection runs on its own strand, so one request's work is serialized without locks and
// thousands of open streams (server-sent events) cost memory, not threads.
//
// Why Beast: it is in Debian's Boost (header-only, no new runtime library), it exposes the
// connection (a client that goes away is seen at once, which aborts its request), and it speaks
// TLS through the OpenSSL the gRPC port already uses.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pagedllm::http {

struct HttpRequest {
  std::string method;                                     // "GET", "POST", ...
  std::string path;                                       // the target before any '?'
  std::string query;                                      // after the '?', undecoded
  absl::flat_hash_map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string remote;  // the client's address, "ip:port"

  // The header's value, or "" (`name` in lower case).
  absl::string_view Header(absl::string_view name) const;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One request's response. Every method may be called from any thread: the work is posted to the
// connection's strand. Calls after the response is complete (or the client gone) do nothing.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  // The whole response at once.
  virtual void Respond(int status, absl::string_view content_type, std::string body,
                       HttpHeaders headers = {}) = 0;
  // A response streamed in pieces (chunked transfer encoding): StartStream once, Write any
  // number of times, EndStream once.
  virtual void StartStream(int status, absl::string_view content_type,
                           HttpHeaders headers = {}) = 0;
  virtual void Write(std::string data) = 0;
  virtual void EndStream() = 0;

  // `on_gone` runs once (on the connection's strand) if the client disconnects, or stops reading
  // what is written, before the response is complete.
  virtual void SetOnGone(std::function<void()> on_gone) = 0;
  // Runs `work` on the connection's strand, after the handler and every earlier posted work.
  virtual void Post(std::function<void()> work) = 0;
};

// Called on the connection's strand for every complete request. It must not block: it answers
// through `exchange` at once or later, from any thread.
using HttpHandler =
    std::function<void(HttpRequest request, std::shared_ptr<HttpExchange> exchange)>;

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;  // 0 picks a free one (see HttpServer::port)
  int num_threads = 4;
  // PEM files: both set, the port speaks TLS only.
  std::string tls_cert_file;
  std::string tls_key_file;
  size_t max_header_bytes = 64 << 10;
  size_t max_body_bytes = 64 << 20;
  // Output a client has not read yet, per response: past it the client counts as gone.
  size_t max_unread_output_bytes = 32 << 20;
  // A connection with no request in progress is closed after this long (also bounds a client
  // that sends its request slowly); a write not taken by the client within it ends the response.
  absl::Duration idle_timeout = absl::Seconds(60);
};

class HttpServer {
 public:
  // Listens on options.host:options.port; errors name the address or the TLS file.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           HttpHandler handler);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  bool tls() const;
  // Closes the listener and every connection, then joins the threads. Idempotent.
  void Stop();

  class Core;  // the io_context, acceptor and threads (http_server.cc)

 private:
  explicit HttpServer(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace pagedllm::http
