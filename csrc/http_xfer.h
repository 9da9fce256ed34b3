/* Internal to the http primitive: one transfer (an easy handle plus the
 * buffers that collect its response) and the client settings it applies.
 * http.c owns the Lua class; http_xfer.c prepares transfers and turns their
 * outcome into Lua values. */
#ifndef WXHW_HTTP_XFER_H
#define WXHW_HTTP_XFER_H

#include <curl/curl.h>

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
  char *proxy;      /* as given (may carry credentials): never printed */
  char *proxy_safe; /* without user:password, for tostring */
  char *ca_file;
  char *user_agent;
} wxhw_http_conf;

typedef struct {
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
  int active;       /* currently added to the multi handle */
  int attached;     /* its sockets go through the loop (wxhw_loop_attach) */
  lua_Integer index;/* position in a batch */
  CURLcode code;
  char errbuf[CURL_ERROR_SIZE];
} wxhw_xfer;

/* Prepares `x` from the request table at `req`. Returns 0 when ready, or
 * pushes an error object (the request was refused before any I/O) and returns
 * 1. Raises on wrong argument types. */
int wxhw_xfer_prepare(lua_State *L, wxhw_xfer *x, int req, CURLSH *share,
                      const wxhw_http_conf *conf);

/* After the transfer ran with result `code`: pushes a response table and
 * returns 1, or pushes an error object and returns 0. */
int wxhw_xfer_push_result(lua_State *L, wxhw_xfer *x, CURLcode code);

/* Drops per-request state (header list, buffers kept for reuse unless big). */
void wxhw_xfer_clear(wxhw_xfer *x);

/* Frees everything, including the easy handle. */
void wxhw_xfer_free(wxhw_xfer *x);

/* The batch event loop (http_loop.c). */
typedef struct {
  CURLM *multi;
  int epfd;
  long long deadline; /* curl's timer, monotonic ms, or -1 */
  unsigned char *reg; /* per socket descriptor: what the epoll set holds */
  size_t nreg;
} wxhw_loop;

int wxhw_loop_init(wxhw_loop *l, long max_connections); /* 0, or -1 */
int wxhw_loop_attach(wxhw_loop *l, CURL *e);              /* 0, or -1 */
void wxhw_loop_free(wxhw_loop *l);
/* Waits (at most 1 s) for socket readiness or curl's timer and drives the
 * transfers that can move. */
CURLMcode wxhw_loop_step(wxhw_loop *l);

/* Pushes an error object {kind="http", reason=, message=, ...} (no nil). */
void wxhw_http_push_error(lua_State *L, const char *kind, const char *reason,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#pragma GCC visibility pop

#endif
