/* The libcurl engine of wxhw.http (HTTP/2, proxies, credentials in the URL,
 * framing headers, engine="curl"): the options of a reused easy handle, its
 * body and header callbacks, and the response or failure from its result.
 * The request was read and checked by request.c; http.c runs the handle on
 * the client's loop. Also gives every easy handle of the direct engine its
 * base options (wxhw_http_base_opts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

/* ---- callbacks ------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  wxhw_xfer *x = ud;
  size_t len = size * n;
  if (len > x->max_body - x->body.len) {
    x->too_large = 1;
    return 0; /* aborts with CURLE_WRITE_ERROR */
  }
  return wxhw_buf_add(&x->body, p, len) == 0 ? len : 0;
}

static size_t trim_end(const char *p, size_t n) {
  while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  return n;
}

/* Keeps only the headers of the final response: a new status line (after a
 * 1xx or a proxy CONNECT) starts the list again. Trailer fields (libcurl
 * hands them here after the body) are dropped, as the direct engine does:
 * merged in, a trailer could turn content-type into a list or add a header
 * the server never sent in its head (RFC 9110 6.5.1). */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  wxhw_xfer *x = ud;
  size_t len = size * n, end = trim_end(p, len), colon, vstart;
  char *d;
  if (end >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    x->hdrs.len = 0;
    x->nhdrs = 0;
    x->head_ended = 0;
    return len;
  }
  if (end == 0) { /* the blank line that ends a header section */
    x->head_ended = 1;
    return len;
  }
  if (x->head_ended || p[0] == ' ' || p[0] == '\t') return len; /* a trailer, or obsolete folding */
  if (memchr(p, '\0', end)) return 0; /* a NUL would break the packed list: protocol error */
  d = memchr(p, ':', end);
  if (!d || d == p) return len;
  colon = (size_t)(d - p);
  for (vstart = colon + 1; vstart < end && (p[vstart] == ' ' || p[vstart] == '\t'); vstart++) {}
  return wxhw_xfer_add_header(x, p, colon, p + vstart, end - vstart) == 0 ? len : 0;
}

/* ---- set-up --------------------------------------------------------------- */

/* What every easy handle of both engines gets: the client's share handle,
 * http(s) only, no signals, and TLS verification of peer and host name,
 * which nothing can turn off (a custom CA file is the way to test). */
int wxhw_http_base_opts(CURL *e, CURLSH *share, char *errbuf, const wxhw_http_conf *conf) {
  int bad = 0;
  bad |= curl_easy_setopt(e, CURLOPT_SHARE, share) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
  if (conf->ca_file) bad |= curl_easy_setopt(e, CURLOPT_CAINFO, conf->ca_file) != CURLE_OK;
  return bad ? -1 : 0;
}

#define SETOPT(opt, val)                                                      \
  do {                                                                        \
    if (curl_easy_setopt(e, opt, val) != CURLE_OK)                            \
      return luaL_error(L, "libcurl refused option " #opt), 1;                \
  } while (0)

/* The headers every request carries: "Expect:" (no 100-continue round trip)
 * and the client's User-Agent. The User-Agent goes in as a custom header
 * rather than CURLOPT_USERAGENT: libcurl 7.88 formats that option into the
 * request byte by byte twice per transfer (about 9k instructions); a custom
 * header is copied once. */
static int base_headers(wxhw_xfer *x, const wxhw_http_conf *conf) {
  struct curl_slist *l = curl_slist_append(NULL, "Expect:");
  if (!l) return -1;
  x->base_hdrs = l;
  if (*conf->user_agent) {
    size_t n = strlen(conf->user_agent) + sizeof "User-Agent: ";
    char *line = malloc(n);
    if (!line) return -1;
    snprintf(line, n, "User-Agent: %s", conf->user_agent);
    l = curl_slist_append(x->base_hdrs, line);
    free(line);
    if (!l) return -1;
  }
  return 0;
}

/* Options that never change for a client: set once per easy handle, which is
 * then never reset, so a request only touches what differs. */
static int setup_easy(lua_State *L, wxhw_xfer *x, CURLSH *share, const wxhw_http_conf *conf) {
  CURL *e = x->easy = curl_easy_init();
  if (!e) return luaL_error(L, "curl_easy_init failed");
  if (base_headers(x, conf) != 0) return luaL_error(L, "out of memory");
  if (wxhw_http_base_opts(e, share, x->errbuf, conf) != 0) return luaL_error(L, "libcurl refused a base option"), 1;
  /* libcurl would look the proxy variables up on every transfer (five
   * getenv scans of environ): it gets the values read at new() instead,
   * which the direct engine decided on too. The env proxy for the URL's
   * scheme is set per request (wxhw_curl_prepare); none to begin with. */
  SETOPT(CURLOPT_NOPROXY, conf->no_proxy ? conf->no_proxy : "");
  x->env_proxy = NULL;
  if (conf->proxy) {
    SETOPT(CURLOPT_PROXY, conf->proxy);
    /* for the CONNECT request, which does not carry custom headers */
    if (*conf->user_agent) SETOPT(CURLOPT_USERAGENT, conf->user_agent);
  } else {
    SETOPT(CURLOPT_PROXY, "");
  }
  SETOPT(CURLOPT_HTTP_VERSION, conf->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
  if (conf->max_idle_s > 0) SETOPT(CURLOPT_MAXAGE_CONN, conf->max_idle_s);
  SETOPT(CURLOPT_MAXCONNECTS, conf->max_connections);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_WRITEDATA, x);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_HEADERDATA, x);
  SETOPT(CURLOPT_PRIVATE, x);
  return 0;
}

/* Points the easy handle at the request read into x (its URL parsed into
 * x->uh, its headers in x->req_headers). Raises if libcurl refuses an option. */
int wxhw_curl_prepare(lua_State *L, wxhw_xfer *x, CURLSH *share, const wxhw_http_conf *conf) {
  CURL *e;
  if (!x->easy) setup_easy(L, x, share, conf);
  if (x->req_headers) { /* user headers: add the base ones to them */
    struct curl_slist *b;
    for (b = x->base_hdrs; b; b = b->next) {
      struct curl_slist *l;
      if (x->own_ua && b != x->base_hdrs) continue; /* theirs replaces ours */
      if ((l = curl_slist_append(x->req_headers, b->data)) == NULL) luaL_error(L, "out of memory");
      x->req_headers = l;
    }
  }
  e = x->easy;
  x->errbuf[0] = '\0';
  if (!conf->proxy) {
    const char *px = x->url_https ? conf->env_proxy_https : conf->env_proxy_http;
    if (px != x->env_proxy) {
      SETOPT(CURLOPT_PROXY, px ? px : "");
      x->env_proxy = px;
    }
  }
  SETOPT(CURLOPT_CURLU, x->uh);
  SETOPT(CURLOPT_TIMEOUT_MS, x->timeout_ms);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, x->connect_timeout_ms);
  SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max_body);
  SETOPT(CURLOPT_HTTPHEADER, x->req_headers ? x->req_headers : x->base_hdrs);

  /* back to a plain GET first, so nothing of the previous request survives */
  SETOPT(CURLOPT_HTTPGET, 1L);
  SETOPT(CURLOPT_CUSTOMREQUEST, (char *)NULL);
  if (x->mlen == 4 && memcmp(x->method, "HEAD", 4) == 0) {
    SETOPT(CURLOPT_NOBODY, 1L);
  } else if (x->rbody) {
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->rblen);
    SETOPT(CURLOPT_POSTFIELDS, x->rbody); /* the request table keeps it alive */
    if (!(x->mlen == 4 && memcmp(x->method, "POST", 4) == 0)) SETOPT(CURLOPT_CUSTOMREQUEST, x->method);
  } else if (x->mlen == 4 && memcmp(x->method, "POST", 4) == 0) {
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    SETOPT(CURLOPT_POSTFIELDS, "");
  } else if (!(x->mlen == 3 && memcmp(x->method, "GET", 3) == 0)) {
    SETOPT(CURLOPT_CUSTOMREQUEST, x->method);
  }
  return 0;
}

/* ---- result --------------------------------------------------------------- */

int wxhw_curl_push_result(lua_State *L, wxhw_xfer *x, CURLcode code) {
  double total = 0;
  curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &total);
  x->code = code;
  if (code == CURLE_OK) {
    long status = 0, httpver = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &httpver);
    wxhw_xfer_push_response(L, x, status,
                            httpver == CURL_HTTP_VERSION_2_0 ? "2" : httpver == CURL_HTTP_VERSION_1_0 ? "1.0" : "1.1",
                            total);
    return 1;
  } else {
    curl_off_t req_size = 0;
    curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &req_size);
    wxhw_xfer_push_failure(L, x, code, x->errbuf[0] ? x->errbuf : curl_easy_strerror(code), req_size > 0, total);
    return 0;
  }
}
