/* Internal to the http primitive (csrc/http/): its types and, floor by floor,
 * what each file offers the floors above it. A file calls only the floors
 * below its own, never sideways or up, so the family is a straight stack:
 *
 *   6  http.c           the Lua class wxhw.Http, request() and batch(); the one
 *                       place that picks the engine of a request
 *   5  engine_direct.c  HTTP/1.1 over libcurl CONNECT_ONLY connections it pools
 *   4  engine_curl.c    a reused libcurl easy handle; base options of every handle
 *   3  request.c        request table -> wxhw_xfer; response and failure tables
 *   2  loop.c           epoll + curl_multi_socket_action
 *   1  h1.c (h1.h)      the HTTP/1.x response parser (pure C)
 *
 * (loop.c reports the direct engine's sockets through a function pointer,
 * wxhw_loop.on_direct, which http.c sets: no call edge upwards.) */
#ifndef WXHW_HTTP_INT_H
#define WXHW_HTTP_INT_H

#include <curl/curl.h>

#include "h1.h"
#include "wxhw.h"

#pragma GCC visibility push(hidden)

typedef struct {
  char *data;
  size_t len, cap;
} wxhw_buf;

/* Client-wide settings, fixed at wxhw.http.new(). */
typedef struct {
  long timeout_ms, connect_timeout_ms, max_idle_s;
  long max_connections;
  size_t max_body;         /* response body cap */
  size_t max_request_body; /* request body cap, checked before sending */
  int http2;
  int engine_curl;  /* engine="curl": never the direct engine */
  /* The proxy environment, read once at new() for both engines: the proxy
   * libcurl would take from it for each scheme (NULL: none), no_proxy. */
  char *env_proxy_http, *env_proxy_https;
  char *no_proxy;   /* no_proxy / NO_PROXY, or NULL */
  char *proxy;      /* as given (may carry credentials): never printed */
  char *proxy_safe; /* without user:password, for tostring */
  char *ca_file;
  char *user_agent;
} wxhw_http_conf;

/* Seconds (> 0) as libcurl's milliseconds, at least 1: libcurl reads 0 as
 * "no timeout at all". */
static inline long wxhw_timeout_ms(double seconds) {
  return seconds * 1000 < 1 ? 1 : (long)(seconds * 1000);
}

enum { WXHW_ENGINE_CURL, WXHW_ENGINE_DIRECT };
/* direct transfer states */
enum { WXHW_DX_IDLE, WXHW_DX_WAIT, WXHW_DX_CONNECTING, WXHW_DX_SEND, WXHW_DX_RECV, WXHW_DX_DONE };

typedef struct wxhw_xfer {
  /* First member, also first in wxhw_dconn: CURLINFO_PRIVATE of an easy
   * handle in the multi points at either, and this byte says which. */
  unsigned char tag; /* 0 */
  int engine;       /* of the current request */
  CURL *easy;       /* owned; kept across requests so its caches stay warm */
  struct curl_slist *req_headers; /* this request's, or NULL */
  struct curl_slist *base_hdrs;   /* "Expect:" and User-Agent, for every request */
  int own_ua;       /* the request's headers carry a User-Agent */
  CURLU *uh;        /* the parsed URL handed to curl (CURLOPT_CURLU) */
  char *uh_url;     /* the URL string uh holds, or NULL */
  wxhw_buf body;    /* response body */
  wxhw_buf hdrs;    /* response headers as "name\0value\0" pairs */
  size_t nhdrs;     /* how many pairs, to size the Lua table */
  size_t max_body;
  int too_large;    /* the write callback refused the body */
  int head_ended;   /* libcurl engine: the final header section ended; later lines are trailers */
  int active;       /* currently added to the multi handle */
  int attached;     /* its sockets go through the loop (wxhw_loop_attach) */
  lua_Integer index;/* position in a batch */
  CURLcode code;
  char errbuf[CURL_ERROR_SIZE];

  /* The request as read by wxhw_request_read (strings held by the request
   * table, which stays on the Lua stack while the transfer runs). */
  const char *method, *rbody;
  size_t mlen, rblen;
  long timeout_ms, connect_timeout_ms;

  /* Direct engine (engine_direct.c). The URL parts are worked out by
   * wxhw_direct_eligible once per URL (url_checked, reset by a new URL). */
  char *origin;      /* "scheme://host:port", the pool key */
  char *target;      /* path?query */
  char *hosthdr;     /* Host header value */
  int url_checked;   /* origin..url_direct describe the URL in uh */
  int url_direct;    /* the URL itself allows the direct engine */
  int url_https;     /* the URL's scheme is https */
  const char *env_proxy; /* the CURLOPT_PROXY the easy handle has from conf's env_proxy_* */
  struct wxhw_dconn *conn;
  wxhw_buf req;      /* request head (and a small body) */
  size_t req_off;    /* bytes of req + body sent */
  int body_inline;   /* the body is inside req */
  int close_after;   /* the request said Connection: close */
  wxhw_h1 parser;
  int dstate;
  int retried;       /* a stale keep-alive connection was replaced once */
  long long deadline;/* monotonic ms */
  double t0;
  CURLcode dcode;    /* the outcome, CURLE_OK or what libcurl would say */
  int dsent;         /* a request byte left, on any connection of this exchange */
  int early;         /* response bytes came before the request was sent in full */
  double dtime;      /* seconds the exchange took */
  char dmsg[160];    /* detail of a failure decided here */
} wxhw_xfer;

/* ---- floor 2: loop.c, the event loop of every transfer of a client ------- */

typedef struct {
  CURLM *multi;
  int epfd;
  long long deadline; /* curl's timer, monotonic ms, or -1 */
  long long wake;     /* the caller's next deadline, monotonic ms, or -1 */
  unsigned char *reg; /* per socket descriptor: what the epoll set holds */
  size_t nreg;
  /* readiness of sockets handed over with wxhw_loop_watch: events 1 in, 2 out, 4 error */
  void (*on_direct)(void *ud, int fd, unsigned events);
  void *direct_ud;
} wxhw_loop;

int wxhw_loop_init(wxhw_loop *l, long max_connections); /* 0, or -1 */
int wxhw_loop_attach(wxhw_loop *l, CURL *e);              /* 0, or -1 */
void wxhw_loop_free(wxhw_loop *l);
/* Waits (at most 1 s, or until curl's timer or l->wake) for socket
 * readiness and drives the transfers that can move. */
CURLMcode wxhw_loop_step(wxhw_loop *l);
/* The socket fd (opened through the loop) is driven by the caller from now
 * on: watch `events` (1 in, 2 out, 0 none) and report to on_direct. */
int wxhw_loop_watch(wxhw_loop *l, int fd, unsigned events);
long long wxhw_loop_now_ms(void);

/* ---- floor 3: request.c, engine-neutral ------------------------------------ */

/* Reads the request table at `req` into x (method, URL parsed into x->uh,
 * headers into x->req_headers, body, timeouts). Returns 0, or pushes an
 * error object (the request was refused before any I/O) and returns 1.
 * Raises on wrong argument types. */
int wxhw_request_read(lua_State *L, wxhw_xfer *x, int req, const wxhw_http_conf *conf);
int wxhw_buf_add(wxhw_buf *b, const char *p, size_t n); /* 0, or -1 */
/* Adds one response header (either engine collects them here); 0, or -1. */
int wxhw_xfer_add_header(wxhw_xfer *x, const char *name, size_t nlen, const char *value, size_t vlen);
void wxhw_xfer_push_response(lua_State *L, wxhw_xfer *x, long status, const char *version, double total);
/* An error object with reason, retryable and sent from a libcurl code. */
void wxhw_xfer_push_failure(lua_State *L, wxhw_xfer *x, CURLcode code, const char *detail, int sent,
                            double total);
/* Pushes an error object {kind="http", reason=, message=, ...} (no nil). */
void wxhw_http_push_error(lua_State *L, const char *kind, const char *reason,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Drops per-request state (header list, buffers kept for reuse unless big). */
void wxhw_xfer_clear(wxhw_xfer *x);
/* Frees everything, including the easy handle. */
void wxhw_xfer_free(wxhw_xfer *x);

/* ---- floor 4: engine_curl.c ------------------------------------------------ */

/* The options every easy handle of both engines gets (share, errbuf, http(s)
 * only, TLS verification with conf's CA file). 0, or -1 if libcurl refused one. */
int wxhw_http_base_opts(CURL *e, CURLSH *share, char *errbuf, const wxhw_http_conf *conf);
/* Sets x's easy handle (made on first use) up for the request read into x.
 * Returns 0; raises if libcurl refuses an option. */
int wxhw_curl_prepare(lua_State *L, wxhw_xfer *x, CURLSH *share, const wxhw_http_conf *conf);
/* After the transfer ran with result `code`: pushes a response table and
 * returns 1, or pushes an error object and returns 0. */
int wxhw_curl_push_result(lua_State *L, wxhw_xfer *x, CURLcode code);

/* ---- floor 5: engine_direct.c ---------------------------------------------- */

typedef struct wxhw_dpool wxhw_dpool; /* a client's direct connections */
typedef struct wxhw_dconn wxhw_dconn; /* one of them; starts with tag 1 */

/* Whether the request read into x takes the direct engine: the client allows
 * it (no engine="curl", http2 or proxy), the URL does (no credentials, no
 * proxy from the environment; its parts are worked out once per URL) and no
 * header changes the framing. Raises when out of memory. */
int wxhw_direct_eligible(lua_State *L, wxhw_xfer *x, const wxhw_http_conf *conf);
/* Builds the request bytes; returns 0 (raises when out of memory). */
int wxhw_direct_prepare(lua_State *L, wxhw_xfer *x, const wxhw_http_conf *conf);
/* wxhw_loop.on_direct for a pool (ud). */
void wxhw_direct_on_ready(void *ud, int fd, unsigned events);
/* Starts (or, for a transfer waiting for a connection, retries starting) x. */
void wxhw_direct_start(wxhw_dpool *p, wxhw_xfer *x);
/* A connection's connect finished (CURLMSG_DONE for a wxhw_dconn). */
void wxhw_direct_connected(wxhw_dpool *p, wxhw_dconn *c, CURLcode rc);
/* Fails x with a timeout when its deadline passed; returns its deadline. */
long long wxhw_direct_check_time(wxhw_dpool *p, wxhw_xfer *x, long long now);
/* Drops x's connection (a Lua error interrupted the transfer). */
void wxhw_direct_abort(wxhw_dpool *p, wxhw_xfer *x);
/* Pushes the response table (returns 1) or an error object (returns 0). */
int wxhw_direct_push_result(lua_State *L, wxhw_xfer *x);
wxhw_dpool *wxhw_dpool_new(wxhw_loop *l, const wxhw_http_conf *conf); /* NULL: no memory */
void wxhw_dpool_free(wxhw_dpool *p); /* closes its connections; NULL is fine */

#pragma GCC visibility pop

#endif
