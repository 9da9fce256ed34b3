/* The direct engine of wxhw.http, for HTTP/1.1 without a proxy. libcurl
 * still makes every connection (DNS, TCP, TLS with verification; its DNS
 * cache and TLS sessions shared through a share handle) as a CONNECT_ONLY
 * transfer on the client's multi handle; the request then goes out with
 * curl_easy_send and the response comes back with curl_easy_recv, read by
 * h1.c. That skips libcurl's per-transfer machinery, most of the user
 * CPU of a keep-alive request. Connections are pooled per origin here.
 *
 * CONNECT_ONLY handles stay added to the multi handle while pooled: their
 * connection lives in the multi's connection cache, where curl_easy_send
 * finds it (libcurl never reuses a CONNECT_ONLY connection for another
 * transfer, and FRESH_CONNECT makes sure of it). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"

#define DEFAULT_MAX_IDLE_S 118 /* libcurl's CURLOPT_MAXAGE_CONN default */
#define INLINE_BODY 16384      /* bodies up to this go out with the head */
#define RECV_CHUNK 16384

/* A CONNECT_ONLY connection of the direct engine. */
struct wxhw_dconn {
  unsigned char tag; /* 1 */
  CURL *easy;
  char *origin;
  curl_socket_t fd;
  int busy;          /* connecting or carrying a request */
  int connecting;
  int dead;          /* woke while idle: the peer closed it */
  int tls;           /* https: a send may wait for input and a receive for output */
  unsigned watched;  /* epoll events set for it: 1 in, 2 out */
  long uses;         /* requests it completed */
  double idle_since;
  wxhw_xfer *owner;
  char errbuf[CURL_ERROR_SIZE];
};

/* A client's direct connections (wxhw_dpool_new). */
struct wxhw_dpool {
  CURLSH *share;        /* DNS + TLS sessions of direct connections */
  wxhw_dconn **conns;   /* every direct connection, idle or busy */
  size_t n, cap;
  wxhw_dconn **byfd;    /* socket descriptor -> connection */
  size_t nbyfd;
  wxhw_loop *loop;
  const wxhw_http_conf *conf;
};

/* ---- URL and eligibility --------------------------------------------------- */

static int is_ip_literal(const char *h, size_t n) {
  size_t i;
  if (n && h[0] == '[') return 1;
  for (i = 0; i < n; i++)
    if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.')) return 0;
  return 1;
}

/* Whether no_proxy surely exempts host, as libcurl reads it. Conservative:
 * entries it cannot judge (CIDR ranges) count as no match, which only sends
 * the request through libcurl, which then decides. */
static int no_proxy_exempts(const char *list, const char *host, size_t hlen) {
  const char *p = list;
  int ip = is_ip_literal(host, hlen);
  if (!list) return 0;
  if (strcmp(list, "*") == 0) return 1;
  if (hlen > 1 && host[0] == '[') host++, hlen -= 2;
  while (*p) {
    const char *e;
    size_t len;
    while (*p == ',' || *p == ' ') p++;
    for (e = p; *e && *e != ',' && *e != ' '; e++) {}
    len = (size_t)(e - p);
    if (len && !ip && *p == '.') p++, len--;
    if (len && !memchr(p, '/', len)) {
      if (len == hlen && strncasecmp(host, p, len) == 0) return 1;
      if (!ip && len < hlen && host[hlen - len - 1] == '.' && strncasecmp(host + hlen - len, p, len) == 0)
        return 1;
    }
    p = e;
  }
  return 0;
}

static char *join(const char *a, const char *b, const char *c, const char *d) {
  size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 1;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s%s%s%s", a, b, c, d);
  return s;
}

/* Caches the URL parts of x->uh the direct engine needs and whether the URL
 * allows it (no credentials in it, no proxy for it); 0, or -1 (memory). */
static int direct_url(wxhw_xfer *x, const wxhw_http_conf *conf) {
  char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *user = NULL, *pw = NULL;
  int rc = 0, https, deflt;
  free(x->origin);
  free(x->target);
  free(x->hosthdr);
  x->origin = x->target = x->hosthdr = NULL;
  x->url_direct = 0;
  if (curl_url_get(x->uh, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(x->uh, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      curl_url_get(x->uh, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
      curl_url_get(x->uh, CURLUPART_PATH, &path, 0) != CURLUE_OK)
    goto out; /* leave it to libcurl */
  if (curl_url_get(x->uh, CURLUPART_QUERY, &query, 0) != CURLUE_OK) query = NULL;
  https = strcmp(scheme, "https") == 0;
  deflt = atoi(port) == (https ? 443 : 80);
  x->origin = join(scheme, "://", host, "");
  if (x->origin) {
    char *o = join(x->origin, ":", port, "");
    free(x->origin);
    x->origin = o;
  }
  x->target = join(*path ? path : "/", query ? "?" : "", query ? query : "", "");
  x->hosthdr = deflt ? join(host, "", "", "") : join(host, ":", port, "");
  if (!x->origin || !x->target || !x->hosthdr) {
    rc = -1;
    goto out;
  }
  /* credentials in the URL mean authentication: libcurl's business */
  x->url_direct = curl_url_get(x->uh, CURLUPART_USER, &user, 0) != CURLUE_OK &&
                  curl_url_get(x->uh, CURLUPART_PASSWORD, &pw, 0) != CURLUE_OK;
  if ((https ? conf->env_proxy_https : conf->env_proxy_http) != NULL &&
      !no_proxy_exempts(conf->no_proxy, host, strlen(host)))
    x->url_direct = 0;
out:
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_free(path);
  curl_free(query);
  curl_free(user);
  curl_free(pw);
  return rc;
}

static size_t header_name_len(const char *line) {
  size_t n = 0;
  while (line[n] && line[n] != ':' && line[n] != ';') n++;
  return n;
}

static int has_header(const wxhw_xfer *x, const char *name) {
  const struct curl_slist *l;
  size_t n = strlen(name);
  for (l = x->req_headers; l; l = l->next)
    if (header_name_len(l->data) == n && strncasecmp(l->data, name, n) == 0) return 1;
  return 0;
}

int wxhw_direct_eligible(lua_State *L, wxhw_xfer *x, const wxhw_http_conf *conf) {
#ifndef __linux__
  (void)L, (void)x, (void)conf, (void)direct_url;
  return 0;
#else
  if (conf->engine_curl || conf->http2 || conf->proxy) return 0;
  if (!x->url_checked) {
    if (direct_url(x, conf) != 0) luaL_error(L, "out of memory");
    x->url_checked = 1;
  }
  if (!x->url_direct) return 0;
  /* headers that change the framing or ask for a 100-continue round trip:
   * libcurl gives them meaning, so such requests go through it */
  return !has_header(x, "transfer-encoding") && !has_header(x, "content-length") && !has_header(x, "expect");
#endif
}

/* ---- request bytes ---------------------------------------------------------- */

static int is(const char *m, size_t n, const char *lit) { return strlen(lit) == n && memcmp(m, lit, n) == 0; }

static int add(wxhw_buf *b, const char *s) { return wxhw_buf_add(b, s, strlen(s)); }

/* Whether a "Connection" request header asks for close. */
static int asks_close(const wxhw_xfer *x) {
  const struct curl_slist *l;
  for (l = x->req_headers; l; l = l->next) {
    size_t n = header_name_len(l->data);
    const char *v;
    if (n != 10 || strncasecmp(l->data, "connection", 10) != 0 || l->data[n] != ':') continue;
    for (v = l->data + n + 1; *v;) {
      size_t k;
      while (*v == ' ' || *v == '\t' || *v == ',') v++;
      for (k = 0; v[k] && v[k] != ',' && v[k] != ' ' && v[k] != '\t'; k++) {}
      if (k == 5 && strncasecmp(v, "close", 5) == 0) return 1;
      v += k;
    }
  }
  return 0;
}

int wxhw_direct_prepare(lua_State *L, wxhw_xfer *x, const wxhw_http_conf *conf) {
  wxhw_buf *b = &x->req;
  const struct curl_slist *l;
  int head = is(x->method, x->mlen, "HEAD"), post = is(x->method, x->mlen, "POST");
  int has_body = x->rbody != NULL && !head; /* libcurl's NOBODY drops a HEAD's body */
  int bad = 0;
  char num[sizeof "Content-Length: \r\n" + 20]; /* 20 digits: SIZE_MAX */
  b->len = 0;
  /* the same request libcurl writes for these options */
  bad |= wxhw_buf_add(b, x->method, x->mlen);
  bad |= add(b, " ");
  bad |= add(b, x->target);
  bad |= add(b, " HTTP/1.1\r\n");
  if (!has_header(x, "host")) {
    bad |= add(b, "Host: ");
    bad |= add(b, x->hosthdr);
    bad |= add(b, "\r\n");
  }
  if (!x->own_ua && *conf->user_agent) {
    bad |= add(b, "User-Agent: ");
    bad |= add(b, conf->user_agent);
    bad |= add(b, "\r\n");
  }
  if (!has_header(x, "accept")) bad |= add(b, "Accept: */*\r\n");
  if (has_body || post || is(x->method, x->mlen, "PUT")) {
    snprintf(num, sizeof num, "Content-Length: %zu\r\n", has_body ? x->rblen : (size_t)0);
    bad |= add(b, num);
    /* libcurl posts form data unless told otherwise */
    if ((has_body || post) && !has_header(x, "content-type"))
      bad |= add(b, "Content-Type: application/x-www-form-urlencoded\r\n");
  }
  for (l = x->req_headers; l; l = l->next) {
    size_t n = header_name_len(l->data);
    if (l->data[n] == ';') { /* "Name;" is an empty header */
      bad |= wxhw_buf_add(b, l->data, n);
      bad |= add(b, ":\r\n");
    } else {
      bad |= add(b, l->data);
      bad |= add(b, "\r\n");
    }
  }
  bad |= add(b, "\r\n");
  x->body_inline = 0;
  if (has_body && x->rblen <= INLINE_BODY) {
    bad |= wxhw_buf_add(b, x->rbody, x->rblen);
    x->body_inline = 1;
  }
  if (bad) return luaL_error(L, "out of memory");
  if (!has_body) x->rblen = 0;
  x->close_after = asks_close(x);
  x->parser.head = head;
  return 0;
}

/* ---- connections --------------------------------------------------------- */

static void watch(wxhw_dpool *p, wxhw_dconn *c, unsigned ev) {
  if (c->watched == ev) return;
  if (wxhw_loop_watch(p->loop, c->fd, ev) == 0) c->watched = ev;
}

static void conn_close(wxhw_dpool *p, wxhw_dconn *c) {
  size_t i;
  if (c->fd != CURL_SOCKET_BAD && (size_t)c->fd < p->nbyfd && p->byfd[c->fd] == c) p->byfd[c->fd] = NULL;
  if (c->easy) {
    /* removing a CONNECT_ONLY handle closes its connection (through on_close) */
    curl_multi_remove_handle(p->loop->multi, c->easy);
    curl_easy_cleanup(c->easy);
  }
  for (i = 0; i < p->n; i++) {
    if (p->conns[i] == c) {
      p->conns[i] = p->conns[--p->n];
      break;
    }
  }
  if (c->owner && c->owner->conn == c) c->owner->conn = NULL;
  free(c->origin);
  free(c);
}

#define SET(opt, val)                                       \
  do {                                                      \
    if (curl_easy_setopt(e, opt, val) != CURLE_OK) bad = 1; \
  } while (0)

static wxhw_dconn *conn_new(wxhw_dpool *p, wxhw_xfer *x, long long now) {
  const wxhw_http_conf *conf = p->conf;
  wxhw_dconn *c;
  wxhw_dconn **grown;
  CURL *e;
  char *url;
  int bad = 0;
  long left = (long)(x->deadline - now);
  if (!p->share) {
    if ((p->share = curl_share_init()) == NULL) return NULL;
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 8;
    if ((grown = realloc(p->conns, cap * sizeof *grown)) == NULL) return NULL;
    p->conns = grown;
    p->cap = cap;
  }
  if ((c = calloc(1, sizeof *c)) == NULL) return NULL;
  c->tag = 1;
  c->tls = strncmp(x->origin, "https:", 6) == 0;
  c->fd = CURL_SOCKET_BAD;
  c->watched = 0xff; /* unknown: the first watch() sets it */
  if ((c->origin = strdup(x->origin)) == NULL || (c->easy = e = curl_easy_init()) == NULL) {
    free(c->origin);
    free(c);
    return NULL;
  }
  url = join(x->origin, "/", "", "");
  if (!url) bad = 1;
  else SET(CURLOPT_URL, url);
  free(url);
  SET(CURLOPT_CONNECT_ONLY, 1L);
  SET(CURLOPT_FRESH_CONNECT, 1L);
  if (wxhw_http_base_opts(e, p->share, c->errbuf, conf) != 0) bad = 1;
  SET(CURLOPT_PROXY, ""); /* decided already: no proxy applies */
  SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1); /* ALPN offers http/1.1 only */
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_CONNECTTIMEOUT_MS, x->connect_timeout_ms);
  SET(CURLOPT_TIMEOUT_MS, left > 0 ? left : 1L);
  SET(CURLOPT_MAXCONNECTS, conf->max_connections);
  SET(CURLOPT_PRIVATE, c);
  if (bad || wxhw_loop_attach(p->loop, e) != 0 || curl_multi_add_handle(p->loop->multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    free(c->origin);
    free(c);
    return NULL;
  }
  p->conns[p->n++] = c;
  c->busy = c->connecting = 1;
  return c;
}

/* ---- one exchange ------------------------------------------------------- */

static void finish(wxhw_dpool *p, wxhw_xfer *x, CURLcode code, int reusable) {
  wxhw_dconn *c = x->conn;
  x->dstate = WXHW_DX_DONE;
  x->dcode = code;
  x->dtime = wxhw_monotonic() - x->t0;
  x->conn = NULL;
  if (!c) return;
  if (code == CURLE_OK && reusable) {
    c->busy = 0;
    c->owner = NULL;
    c->uses++;
    c->idle_since = wxhw_monotonic();
    watch(p, c, 1); /* stays watched: a wake-up while idle means the peer closed it */
  } else {
    conn_close(p, c);
  }
}

/* x->dsent stays as do_send set it: once a request byte has left, on any
 * connection of this exchange, the server may have acted on it. */
static void fail(wxhw_dpool *p, wxhw_xfer *x, CURLcode code, const char *detail) {
  snprintf(x->dmsg, sizeof x->dmsg, "%.150s", detail);
  finish(p, x, code, 0);
}

static void acquire(wxhw_dpool *p, wxhw_xfer *x);

/* A failure on the connection before any response byte came. On a reused
 * connection that is a keep-alive connection the server had closed: like
 * libcurl, send the request again once, on a fresh connection. */
static void io_failed(wxhw_dpool *p, wxhw_xfer *x, CURLcode code, const char *detail) {
  wxhw_dconn *c = x->conn;
  if (c && c->uses > 0 && x->parser.received == 0 && !x->retried) {
    conn_close(p, c);
    x->conn = NULL;
    x->retried = 1;
    x->req_off = 0;
    wxhw_h1_init(&x->parser); /* it saw the EOF */
    acquire(p, x);
    return;
  }
  fail(p, x, code, detail);
}

static const char *conn_error(wxhw_dconn *c, const char *dflt) { return c->errbuf[0] ? c->errbuf : dflt; }

/* Whether the socket has room for output now. */
static int writable(const wxhw_dconn *c) {
  struct pollfd pfd;
  pfd.fd = c->fd;
  pfd.events = POLLOUT;
  pfd.revents = 0;
  return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT);
}

/* curl_easy_send or curl_easy_recv said CURLE_AGAIN: returns 1 to try again
 * at once, else watches what can unblock it. On plain TCP that is output for
 * a send (and input too: an early response or the peer closing must be
 * seen), input for a receive. Under TLS either call may wait for the other
 * direction (OpenSSL reading while writing, or writing while reading), which
 * CURLE_AGAIN does not tell: a socket without room is watched both ways (no
 * spin: EPOLLOUT fires once it drains); one with room gets up to two more
 * tries (it may have drained just now), then only input, as watching output
 * on a writable socket would wake the loop without end. */
static int again(wxhw_dpool *p, wxhw_dconn *c, int sending, int *tries) {
  if (!c->tls) {
    watch(p, c, sending ? 3u : 1u);
    return 0;
  }
  if (!writable(c)) {
    watch(p, c, 3u);
    return 0;
  }
  if ((*tries)++ < 2) return 1;
  watch(p, c, 1u);
  return 0;
}

/* Reads the response into the parser until the socket has nothing more.
 * Returns 1 when the exchange ended (answered, failed, or sent again on a
 * fresh connection), 0 on CURLE_AGAIN. Also runs while the request is still
 * going out: a response that comes then (a 413 or 401 before the whole body)
 * is the answer, and the connection is not reused (it is out of step). */
static int recv_some(wxhw_dpool *p, wxhw_xfer *x) {
  wxhw_dconn *c = x->conn;
  char buf[RECV_CHUNK];
  for (;;) {
    size_t n = 0, used = 0;
    int r;
    CURLcode rc;
    c->errbuf[0] = '\0';
    rc = curl_easy_recv(c->easy, buf, sizeof buf, &n);
    if (rc == CURLE_AGAIN) return 0;
    if (rc != CURLE_OK) {
      io_failed(p, x, CURLE_RECV_ERROR, conn_error(c, "Recv failure"));
      return 1;
    }
    if (n == 0) { /* the peer closed */
      if (wxhw_h1_eof(&x->parser) == WXHW_H1_DONE) finish(p, x, CURLE_OK, 0);
      else if (x->parser.received == 0 && x->dstate == WXHW_DX_SEND)
        io_failed(p, x, CURLE_SEND_ERROR, "Connection closed while sending the request");
      else if (x->parser.received == 0) io_failed(p, x, CURLE_GOT_NOTHING, "Empty reply from server");
      else fail(p, x, CURLE_PARTIAL_FILE, x->parser.error);
      return 1;
    }
    if (x->dstate == WXHW_DX_SEND) x->early = 1;
    r = wxhw_h1_feed(&x->parser, buf, n, &used);
    if (r == WXHW_H1_MORE) continue;
    if (r == WXHW_H1_DONE) {
      /* bytes beyond the response, or a request not sent in full: the
       * connection is out of step */
      finish(p, x, CURLE_OK, used == n && x->parser.keep_alive && !x->close_after && !x->early);
    } else if (r == WXHW_H1_ABORT) {
      if (x->too_large) fail(p, x, CURLE_FILESIZE_EXCEEDED, "Exceeded the maximum allowed file size");
      else fail(p, x, CURLE_OUT_OF_MEMORY, "out of memory");
    } else {
      fail(p, x, CURLE_WEIRD_SERVER_REPLY, x->parser.error);
    }
    return 1;
  }
}

static void do_send(wxhw_dpool *p, wxhw_xfer *x) {
  wxhw_dconn *c = x->conn;
  size_t total = x->req.len + (x->body_inline ? 0 : x->rblen);
  int tries = 0;
  while (x->req_off < total) {
    const char *d;
    size_t n, sent = 0;
    CURLcode rc;
    if (x->req_off < x->req.len) {
      d = x->req.data + x->req_off;
      n = x->req.len - x->req_off;
    } else {
      d = x->rbody + (x->req_off - x->req.len);
      n = total - x->req_off;
    }
    c->errbuf[0] = '\0';
    rc = curl_easy_send(c->easy, d, n, &sent);
    if (rc == CURLE_AGAIN) {
      if (again(p, c, 1, &tries)) continue;
      return;
    }
    if (rc != CURLE_OK) {
      char why[CURL_ERROR_SIZE];
      snprintf(why, sizeof why, "%s", conn_error(c, "Send failure"));
      /* the server may have answered and closed (a 413 before the whole
       * body): that answer counts, and then the request is not repeated */
      if (!recv_some(p, x)) io_failed(p, x, CURLE_SEND_ERROR, why);
      return;
    }
    if (sent > 0) x->dsent = 1;
    x->req_off += sent;
    tries = 0;
  }
  x->dstate = WXHW_DX_RECV;
  watch(p, c, 1);
}

static void do_recv(wxhw_dpool *p, wxhw_xfer *x) {
  int tries = 0;
  while (!recv_some(p, x))
    if (!again(p, x->conn, 0, &tries)) return;
}

static void begin_send(wxhw_dpool *p, wxhw_xfer *x) {
  x->dstate = WXHW_DX_SEND;
  x->req_off = 0;
  x->early = 0;
  do_send(p, x);
}

/* Whether an idle connection has input waiting: a server that closes idle
 * connections may first send something (a 408, a TLS close_notify), and one
 * that framed its last response wrongly (a body longer than its
 * Content-Length, a body after HEAD or 204) sends bytes that would be read
 * as the next request's response. libcurl declines such connections too.
 * Checked before every reuse, however short the idle time: the epoll set
 * only notices while the loop runs, and bytes that came after the response
 * (a second segment) are not seen by the read that finished it. */
static int has_input(const wxhw_dconn *c) {
  struct pollfd pfd;
  pfd.fd = c->fd;
  pfd.events = POLLIN;
  pfd.revents = 0;
  return poll(&pfd, 1, 0) != 0;
}

/* Takes an idle connection to the origin, or opens one, or waits for one. */
static void acquire(wxhw_dpool *p, wxhw_xfer *x) {
  double t = wxhw_monotonic();
  double max_idle = p->conf->max_idle_s > 0 ? (double)p->conf->max_idle_s : DEFAULT_MAX_IDLE_S;
  wxhw_dconn *c, *other = NULL;
  size_t i = 0;
  while (i < p->n) {
    c = p->conns[i];
    if (c->busy) {
      i++;
      continue;
    }
    if (c->dead || t - c->idle_since > max_idle ||
        (!x->retried && strcmp(c->origin, x->origin) == 0 && has_input(c))) {
      conn_close(p, c); /* swaps the last one into i */
      continue;
    }
    if (!x->retried && strcmp(c->origin, x->origin) == 0) {
      c->busy = 1;
      c->owner = x;
      x->conn = c;
      begin_send(p, x);
      return;
    }
    if (!other) other = c;
    i++;
  }
  if (p->n >= (size_t)p->conf->max_connections) {
    if (!other) {
      x->dstate = WXHW_DX_WAIT;
      return;
    }
    conn_close(p, other);
  }
  if ((c = conn_new(p, x, wxhw_loop_now_ms())) == NULL) {
    fail(p, x, CURLE_OUT_OF_MEMORY, "cannot set up a connection");
    return;
  }
  c->owner = x;
  x->conn = c;
  x->dstate = WXHW_DX_CONNECTING;
}

static int on_header(void *ud, const char *name, size_t nlen, const char *value, size_t vlen) {
  return wxhw_xfer_add_header(ud, name, nlen, value, vlen) != 0;
}

static int on_head_done(void *ud) {
  wxhw_xfer *x = ud;
  if (x->parser.body_kind == WXHW_H1_BODY_LENGTH && x->parser.content_length > (uint64_t)x->max_body) {
    x->too_large = 1;
    return 1;
  }
  return 0;
}

static int on_body(void *ud, const char *d, size_t n) {
  wxhw_xfer *x = ud;
  if (n > x->max_body - x->body.len) {
    x->too_large = 1;
    return 1;
  }
  return wxhw_buf_add(&x->body, d, n) != 0;
}

void wxhw_direct_start(wxhw_dpool *p, wxhw_xfer *x) {
  if (x->dstate == WXHW_DX_IDLE) {
    x->t0 = wxhw_monotonic();
    x->deadline = wxhw_loop_now_ms() + x->timeout_ms;
    x->retried = 0;
    x->dsent = 0;
    x->parser.ud = x;
    x->parser.on_header = on_header;
    x->parser.on_head_done = on_head_done;
    x->parser.on_body = on_body;
    wxhw_h1_init(&x->parser);
  }
  acquire(p, x);
}

void wxhw_direct_connected(wxhw_dpool *p, wxhw_dconn *c, CURLcode rc) {
  wxhw_xfer *x = c->owner;
  curl_socket_t fd = CURL_SOCKET_BAD;
  c->connecting = 0;
  if (!x) { /* its transfer is gone */
    conn_close(p, c);
    return;
  }
  if (rc != CURLE_OK) {
    fail(p, x, rc, conn_error(c, curl_easy_strerror(rc)));
    return;
  }
  if (curl_easy_getinfo(c->easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD) {
    fail(p, x, CURLE_COULDNT_CONNECT, "no socket after connecting");
    return;
  }
  if ((size_t)fd >= p->nbyfd) {
    size_t n = p->nbyfd ? p->nbyfd : 64;
    wxhw_dconn **m;
    while (n <= (size_t)fd) n *= 2;
    if ((m = realloc(p->byfd, n * sizeof *m)) == NULL) {
      fail(p, x, CURLE_OUT_OF_MEMORY, "out of memory");
      return;
    }
    memset(m + p->nbyfd, 0, (n - p->nbyfd) * sizeof *m);
    p->byfd = m;
    p->nbyfd = n;
  }
  c->fd = fd;
  p->byfd[fd] = c;
  begin_send(p, x);
}

void wxhw_direct_on_ready(void *ud, int fd, unsigned events) {
  wxhw_dpool *p = ud;
  wxhw_dconn *c = (size_t)fd < p->nbyfd ? p->byfd[fd] : NULL;
  if (!c) {
    wxhw_loop_watch(p->loop, fd, 0);
    return;
  }
  if (!c->busy || !c->owner) { /* idle: the peer closed it or sent garbage */
    c->dead = 1;
    watch(p, c, 0);
    return;
  }
  if (c->owner->dstate == WXHW_DX_SEND) {
    /* input (or an error) while sending: an early response, the peer's
     * close, or TLS records the send waits for; read it first */
    if ((events & 5u) && recv_some(p, c->owner)) return;
    do_send(p, c->owner);
  } else if (c->owner->dstate == WXHW_DX_RECV) do_recv(p, c->owner);
}

long long wxhw_direct_check_time(wxhw_dpool *p, wxhw_xfer *x, long long now) {
  if (x->dstate == WXHW_DX_DONE || x->dstate == WXHW_DX_IDLE) return -1;
  if (now >= x->deadline) {
    char msg[120];
    snprintf(msg, sizeof msg, "Operation timed out after %ld milliseconds with %llu bytes received",
             x->timeout_ms, (unsigned long long)x->parser.received);
    fail(p, x, CURLE_OPERATION_TIMEDOUT, msg);
    return -1;
  }
  return x->deadline;
}

void wxhw_direct_abort(wxhw_dpool *p, wxhw_xfer *x) {
  if (x->conn) conn_close(p, x->conn);
  x->conn = NULL;
  x->dstate = WXHW_DX_IDLE;
}

int wxhw_direct_push_result(lua_State *L, wxhw_xfer *x) {
  if (x->dcode == CURLE_OK) {
    wxhw_xfer_push_response(L, x, x->parser.status, x->parser.minor == 0 ? "1.0" : "1.1", x->dtime);
    return 1;
  }
  wxhw_xfer_push_failure(L, x, x->dcode, x->dmsg, x->dsent, x->dtime);
  return 0;
}

wxhw_dpool *wxhw_dpool_new(wxhw_loop *l, const wxhw_http_conf *conf) {
  wxhw_dpool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->loop = l;
  p->conf = conf;
  return p;
}

void wxhw_dpool_free(wxhw_dpool *p) {
  if (!p) return;
  while (p->n) conn_close(p, p->conns[p->n - 1]);
  free(p->conns);
  free(p->byfd);
  if (p->share) curl_share_cleanup(p->share); /* after every handle using it */
  free(p);
}
