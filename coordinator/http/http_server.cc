#include "coordinator/http/http_server.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/bind_executor.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "common/logging.h"
#include "coordinator/http/http_wire.h"

namespace pagedllm::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

absl::string_view HttpRequest::Header(absl::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? absl::string_view() : absl::string_view(it->second);
}

namespace {

class ExchangeImpl;

// What an exchange needs of its connection (the connection's type depends on TLS).
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void PostOnStrand(std::function<void()> work) = 0;
  // On the strand: queue bytes of `exchange`'s response (which knows whether they are its last).
  virtual void Enqueue(ExchangeImpl* exchange, std::string bytes) = 0;
  virtual void Close() = 0;  // on any thread
};

}  // namespace

class HttpServer::Core {
 public:
  explicit Core(HttpServerOptions options_in, HttpHandler handler_in)
      : options(std::move(options_in)), handler(std::move(handler_in)) {}

  void Accept();
  void Track(const std::shared_ptr<SessionBase>& session) {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    if (sessions.size() >= 2 * live_hint + 64) {
      sessions.erase(
          std::remove_if(sessions.begin(), sessions.end(),
                         [](const std::weak_ptr<SessionBase>& s) { return s.expired(); }),
          sessions.end());
      live_hint = sessions.size();
    }
    sessions.push_back(session);
  }

  const HttpServerOptions options;
  const HttpHandler handler;
  std::weak_ptr<Core> self_ref;  // handed to sessions for their exchanges
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<ssl::context> tls;
  tcp::acceptor acceptor{ioc};
  int port = 0;
  std::vector<std::thread> threads;
  std::atomic<bool> stopped{false};
  std::atomic<int> responses_in_progress{0};  // handed to the handler, not yet fully written
  std::mutex sessions_mutex;
  std::vector<std::weak_ptr<SessionBase>> sessions;  // guarded by sessions_mutex
  size_t live_hint = 0;
};

namespace {

// One request's response (HttpExchange). Its state is touched only on the connection's strand.
class ExchangeImpl final : public HttpExchange, public std::enable_shared_from_this<ExchangeImpl> {
 public:
  ExchangeImpl(std::weak_ptr<SessionBase> session, std::shared_ptr<HttpServer::Core> core,
               unsigned version, bool keep_alive)
      : session_(std::move(session)),
        core_(std::move(core)),
        version_(version),
        keep_alive_(keep_alive) {}

  void Respond(int status, absl::string_view content_type, std::string body,
               HttpHeaders headers) override {
    OnStrand([status, type = std::string(content_type), body = std::move(body),
              headers = std::move(headers)](ExchangeImpl& self, SessionBase& session) mutable {
      if (self.started_ || self.complete_) return;
      self.started_ = true;
      self.complete_ = true;
      ResponseHead head = self.Head(status, type, headers);
      head.content_length = body.size();
      std::string bytes = FormatResponseHead(head);
      bytes += body;
      session.Enqueue(&self, std::move(bytes));
    });
  }

  void StartStream(int status, absl::string_view content_type, HttpHeaders headers) override {
    OnStrand([status, type = std::string(content_type), headers = std::move(headers)](
                 ExchangeImpl& self, SessionBase& session) {
      if (self.started_ || self.complete_) return;
      self.started_ = true;
      self.streaming_ = true;
      ResponseHead head = self.Head(status, type, headers);
      head.streamed = true;
      session.Enqueue(&self, FormatResponseHead(head));
    });
  }

  void Write(std::string data) override {
    OnStrand([data = std::move(data)](ExchangeImpl& self, SessionBase& session) {
      if (!self.streaming_ || self.complete_ || data.empty()) return;
      session.Enqueue(&self, FrameChunk(self.version_, data));
    });
  }

  void EndStream() override {
    OnStrand([](ExchangeImpl& self, SessionBase& session) {
      if (!self.streaming_ || self.complete_) return;
      self.complete_ = true;
      session.Enqueue(&self, LastChunk(self.version_));
    });
  }

  void SetOnGone(std::function<void()> on_gone) override {
    OnStrand([on_gone = std::move(on_gone)](ExchangeImpl& self, SessionBase&) mutable {
      if (self.gone_) {
        on_gone();  // already gone: tell at once
      } else {
        self.on_gone_ = std::move(on_gone);
      }
    });
  }

  void Post(std::function<void()> work) override {
    OnStrand([work = std::move(work)](ExchangeImpl&, SessionBase&) { work(); });
  }

  // The head of this exchange's response (`type` and `headers` must outlive its formatting).
  ResponseHead Head(int status, absl::string_view type, const HttpHeaders& headers) const {
    ResponseHead head;
    head.status = status;
    head.content_type = type;
    head.headers = &headers;
    head.version = version_;
    head.keep_alive = keep_alive_;
    return head;
  }

  // On the strand, from the session: the client went away before the response was complete.
  void MarkGone() {
    if (complete_ || gone_) return;
    gone_ = true;
    complete_ = true;
    if (on_gone_) {
      std::function<void()> on_gone = std::move(on_gone_);
      on_gone_ = nullptr;
      on_gone();
    }
  }
  bool complete() const { return complete_; }
  bool keep_alive() const { return keep_alive_ && (version_ != 10 || !streaming_); }

 private:
  void OnStrand(std::function<void(ExchangeImpl&, SessionBase&)> work) {
    if (core_->stopped.load()) return;
    std::shared_ptr<SessionBase> session = session_.lock();
    if (session == nullptr) return;
    session->PostOnStrand(
        [self = shared_from_this(), session, work = std::move(work)] { work(*self, *session); });
  }

  const std::weak_ptr<SessionBase> session_;
  const std::shared_ptr<HttpServer::Core> core_;  // keeps the io_context alive
  const unsigned version_;
  const bool keep_alive_;
  // On the strand only.
  bool started_ = false;
  bool streaming_ = false;
  bool complete_ = false;  // the last bytes are queued (or the client is gone)
  bool gone_ = false;
  std::function<void()> on_gone_;
};

constexpr absl::string_view kPlainError = "text/plain; charset=utf-8";

// One connection: reads requests one after another (keep-alive), hands each to the handler,
// and writes its response. While a response is in progress the next read stays pending, so a
// client that disconnects is seen at once.
template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  Session(HttpServer::Core* core, std::shared_ptr<HttpServer::Core> core_ref, std::string remote,
          tcp::socket socket, Args&&... stream_args)
      : core_(core),
        core_ref_(std::move(core_ref)),
        remote_(std::move(remote)),
        stream_(std::move(socket), std::forward<Args>(stream_args)...),
        timer_(stream_.get_executor()) {}

  void Begin() {
    ArmTimer(core_->options.idle_timeout);
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Shut();
                                self->ReadRequest();
                              });
    } else {
      ReadRequest();
    }
  }

  void PostOnStrand(std::function<void()> work) override {
    net::post(stream_.get_executor(), std::move(work));
  }

  void Close() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->Shut(); });
  }

  void Enqueue(ExchangeImpl* exchange, std::string bytes) override {
    if (closed_ || exchange != current_.get()) return;
    unread_bytes_ += bytes.size();
    if (!bytes.empty()) outbox_.push_back(std::move(bytes));
    if (unread_bytes_ > core_->options.max_unread_output_bytes) {
      PAGEDLLM_LOG(WARNING) << "http client " << remote_ << " reads too slowly: " << unread_bytes_
                            << " bytes not taken; closing";
      return Shut();
    }
    Flush();
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  auto& Socket() { return beast::get_lowest_layer(stream_).socket(); }

  // The connection closes unless the timer is disarmed or armed again within `after`.
  void ArmTimer(absl::Duration after) {
    const uint64_t generation = ++timer_generation_;
    timer_.expires_after(absl::ToChronoNanoseconds(after));
    timer_.async_wait([weak = this->weak_from_this(), generation](beast::error_code ec) {
      std::shared_ptr<Session> self = weak.lock();
      // A generation check as well: a wait that expired just before it was cancelled still runs.
      if (ec || self == nullptr || self->timer_generation_ != generation) return;
      self->Shut();
    });
  }
  void SetCurrent(std::shared_ptr<ExchangeImpl> exchange) {
    ClearCurrent();
    current_ = std::move(exchange);
    ++core_->responses_in_progress;
  }
  void ClearCurrent() {
    if (current_ == nullptr) return;
    current_.reset();
    --core_->responses_in_progress;
  }
  void DisarmTimer() {
    ++timer_generation_;
    timer_.cancel();
  }

  void ReadRequest() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(core_->options.max_header_bytes));
    parser_->body_limit(core_->options.max_body_bytes);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    const auto& message = parser_->get();
    if (current_ == nullptr && beast::iequals(message[bhttp::field::expect], "100-continue")) {
      // curl waits a second for this before it sends a large body.
      outbox_.push_back(message.version() == 10 ? "HTTP/1.0 100 Continue\r\n\r\n"
                                                : "HTTP/1.1 100 Continue\r\n\r\n");
      Flush();
    }
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    bhttp::request<bhttp::string_body> message = parser_->release();
    parser_.reset();
    HttpRequest request;
    request.method = std::string(message.method_string());
    const absl::string_view target(message.target().data(), message.target().size());
    const size_t question = target.find('?');
    request.path = std::string(target.substr(0, question));
    if (question != absl::string_view::npos)
      request.query = std::string(target.substr(question + 1));
    for (const auto& field : message) {
      std::string name(field.name_string());
      absl::AsciiStrToLower(&name);
      std::string value(field.value());
      auto [it, inserted] = request.headers.try_emplace(std::move(name), value);
      if (!inserted) absl::StrAppend(&it->second, ", ", value);
    }
    request.body = std::move(message.body());
    request.remote = remote_;
    pending_.push_back({std::move(request), message.version(), message.keep_alive()});
    if (current_ == nullptr) DispatchNext();
    // Otherwise a pipelined request: it waits for the response in progress, and reading pauses.
  }

  void DispatchNext() {
    if (closed_ || pending_.empty()) return;
    Pending next = std::move(pending_.front());
    pending_.pop_front();
    DisarmTimer();  // no idle deadline while a response is in progress
    SetCurrent(std::make_shared<ExchangeImpl>(this->weak_from_this(), core_ref_, next.version,
                                              next.keep_alive));
    std::shared_ptr<ExchangeImpl> exchange = current_;
    try {
      core_->handler(std::move(next.request), exchange);
    } catch (const std::exception& e) {
      PAGEDLLM_LOG(ERROR) << "http handler threw: " << e.what();
      exchange->Respond(500, kPlainError, "internal error\n", {});
    }
    // Keep a read pending: it sees the client go, or its next request.
    if (pending_.empty() && !parser_.has_value()) ReadRequest();
  }

  void OnReadError(beast::error_code ec) {
    parser_.reset();
    if (current_ == nullptr) {
      if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit ||
          ec == bhttp::error::buffer_overflow) {
        return RefuseAndClose(413, "request too large");
      }
      if (ec.category() == bhttp::make_error_code(bhttp::error::end_of_stream).category() &&
          ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
        return RefuseAndClose(400, absl::StrCat("malformed HTTP request: ", ec.message()));
      }
      return Shut();  // closed, reset or timed out between requests
    }
    if (!current_->complete()) return Shut();  // the client left a response in progress
    close_after_write_ = true;                 // the last bytes of a response are being written
  }

  void RefuseAndClose(int status, std::string message) {
    SetCurrent(std::make_shared<ExchangeImpl>(this->weak_from_this(), core_ref_, 11, false));
    ResponseHead head;
    head.status = status;
    head.content_type = kPlainError;
    head.keep_alive = false;
    message += "\n";
    head.content_length = message.size();
    outbox_.push_back(FormatResponseHead(head) + message);
    close_after_write_ = true;
    completing_ = true;
    Flush();
  }

  // Writes everything queued in one gather write.
  void Flush() {
    if (closed_ || writing_ || outbox_.empty()) return;
    writing_ = true;
    in_flight_.assign(std::make_move_iterator(outbox_.begin()),
                      std::make_move_iterator(outbox_.end()));
    outbox_.clear();
    buffers_.clear();
    for (const std::string& piece : in_flight_) buffers_.push_back(net::buffer(piece));
    ArmTimer(core_->options.idle_timeout);  // a client that takes nothing for this long is gone
    net::async_write(stream_, buffers_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t written) {
                       self->OnWritten(ec, written);
                     });
  }

  void OnWritten(beast::error_code ec, size_t written) {
    writing_ = false;
    unread_bytes_ -= std::min(unread_bytes_, written);
    in_flight_.clear();
    if (ec) {
      if (current_ != nullptr) current_->MarkGone();
      return Shut();
    }
    if (!outbox_.empty()) return Flush();
    DisarmTimer();
    const bool done = current_ != nullptr && current_->complete();
    if (done || completing_) {
      const bool keep_alive = !completing_ && current_->keep_alive() && !close_after_write_;
      ClearCurrent();
      completing_ = false;
      if (!keep_alive) return Shut();
      ArmTimer(core_->options.idle_timeout);
      if (!pending_.empty()) return DispatchNext();
      if (!parser_.has_value()) ReadRequest();
    } else if (close_after_write_) {
      Shut();
    }
  }

  void Shut() {
    if (closed_) return;
    closed_ = true;
    if (current_ != nullptr) current_->MarkGone();
    ClearCurrent();
    pending_.clear();
    DisarmTimer();
    beast::error_code ignored;
    Socket().shutdown(tcp::socket::shutdown_both, ignored);
    Socket().close(ignored);
  }

  struct Pending {
    HttpRequest request;
    unsigned version = 11;
    bool keep_alive = true;
  };

  HttpServer::Core* const core_;
  const std::shared_ptr<HttpServer::Core> core_ref_;  // handed to exchanges
  const std::string remote_;
  Stream stream_;
  net::steady_timer timer_;
  uint64_t timer_generation_ = 0;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;  // a read is pending
  std::deque<Pending> pending_;             // requests read, not yet handed over
  std::shared_ptr<ExchangeImpl> current_;   // the response in progress
  std::deque<std::string> outbox_;          // bytes queued, not yet being written
  std::vector<std::string> in_flight_;      // bytes being written
  std::vector<net::const_buffer> buffers_;  // views of in_flight_
  size_t unread_bytes_ = 0;
  bool writing_ = false;
  bool completing_ = false;  // a refusal is being written, then the connection closes
  bool close_after_write_ = false;
  bool closed_ = false;
};

}  // namespace

void HttpServer::Core::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (stopped.load() || ec == net::error::operation_aborted) return;
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      const tcp::endpoint peer = socket.remote_endpoint(ignored);
      const std::string remote = absl::StrCat(peer.address().to_string(), ":", peer.port());
      // The sessions hold a reference to this Core for their exchanges; the server owns it.
      std::shared_ptr<Core> self = self_ref.lock();
      if (tls.has_value()) {
        auto session = std::make_shared<Session<ssl::stream<beast::tcp_stream>>>(
            this, self, remote, std::move(socket), *tls);
        Track(session);
        session->Begin();
      } else {
        auto session =
            std::make_shared<Session<beast::tcp_stream>>(this, self, remote, std::move(socket));
        Track(session);
        session->Begin();
      }
    } else if (ec == net::error::no_descriptors) {
      PAGEDLLM_LOG(WARNING) << "http accept: " << ec.message();
    }
    Accept();
  });
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              HttpHandler handler) {
  if (options.num_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("http threads must be at least 1, got ", options.num_threads));
  }
  auto core = std::make_shared<Core>(options, std::move(handler));
  core->self_ref = core;
  const std::string where = absl::StrCat(options.host, ":", options.port);
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a private key file");
  }
  if (!options.tls_cert_file.empty()) {
    core->tls.emplace(ssl::context::tls_server);
    beast::error_code ec;
    core->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                               ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                               ssl::context::no_tlsv1_1,
                           ec);
    core->tls->use_certificate_chain_file(options.tls_cert_file, ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("--tls_cert ", options.tls_cert_file,
                                                     ": not a readable PEM certificate (",
                                                     ec.message(), ")"));
    }
    core->tls->use_private_key_file(options.tls_key_file, ssl::context::pem, ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("--tls_key ", options.tls_key_file,
                                                     ": not a readable PEM private key (",
                                                     ec.message(), ")"));
    }
  }
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(options.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("http host ", options.host, ": not an IP address (", ec.message(), ")"));
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(options.port));
  core->acceptor.open(endpoint.protocol(), ec);
  if (!ec) core->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) core->acceptor.bind(endpoint, ec);
  if (!ec) core->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", where, ": ", ec.message()));
  }
  core->port = core->acceptor.local_endpoint().port();
  core->work.emplace(net::make_work_guard(core->ioc));
  core->Accept();
  for (int i = 0; i < options.num_threads; ++i) {
    core->threads.emplace_back([raw = core.get()] {
      while (true) {
        try {
          raw->ioc.run();
          return;
        } catch (const std::exception& e) {
          PAGEDLLM_LOG(ERROR) << "http thread: " << e.what();
        }
      }
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(core)));
}

HttpServer::HttpServer(std::shared_ptr<Core> core) : core_(std::move(core)) {}

HttpServer::~HttpServer() { Stop(); }

int HttpServer::port() const { return core_->port; }
bool HttpServer::tls() const { return core_->tls.has_value(); }

void HttpServer::Stop() {
  if (core_->stopped.load()) return;
  net::post(core_->ioc, [core = core_.get()] {
    beast::error_code ignored;
    core->acceptor.close(ignored);
  });
  // Responses being written (the last events of streams the engine just ended) get up to two
  // seconds to reach their clients.
  for (int i = 0; i < 200 && core_->responses_in_progress.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  core_->stopped = true;
  {
    std::lock_guard<std::mutex> lock(core_->sessions_mutex);
    for (const std::weak_ptr<SessionBase>& weak : core_->sessions) {
      if (std::shared_ptr<SessionBase> session = weak.lock()) session->Close();
    }
    core_->sessions.clear();
  }
  core_->work.reset();
  // The closed connections' operations complete with errors, then run() returns.
  for (std::thread& thread : core_->threads) thread.join();
  core_->threads.clear();
}

}  // namespace pagedllm::http
