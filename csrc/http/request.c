/* The engine-neutral part of one wxhw.http transfer: reads and checks the
 * request table (method, URL, headers, body, limits) into a wxhw_xfer,
 * collects response headers and body bytes for either engine, and turns the
 * outcome into a response table or a classified failure. Calls nothing of
 * the engines (http_int.h draws the floors). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"

#define BODY_KEEP (256 * 1024) /* buffers above this are released after use */

void wxhw_http_push_error(lua_State *L, const char *kind, const char *reason,
                          const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  wxhw_fail(L, kind, "%s", msg);
  lua_remove(L, -2); /* the nil */
  if (reason) {
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
  }
}

/* ---- buffers -------------------------------------------------------------- */

/* Makes room for n more bytes. */
static int buf_reserve(wxhw_buf *b, size_t n) {
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 1024;
    char *d;
    while (cap - b->len < n) {
      if (cap > ((size_t)-1) / 2) return -1;
      cap *= 2;
    }
    d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  return 0;
}

int wxhw_buf_add(wxhw_buf *b, const char *p, size_t n) {
  if (buf_reserve(b, n) != 0) return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* Stores one response header as "name\0value\0", the name lower-cased, in
 * one reservation. Returns 0, or -1 (no memory, or a NUL that would break
 * the packed list). */
int wxhw_xfer_add_header(wxhw_xfer *x, const char *name, size_t nlen, const char *value, size_t vlen) {
  size_t i;
  char *d;
  if (memchr(name, '\0', nlen) || memchr(value, '\0', vlen)) return -1;
  if (buf_reserve(&x->hdrs, nlen + 1 + vlen + 1) != 0) return -1;
  d = x->hdrs.data + x->hdrs.len;
  for (i = 0; i < nlen; i++) {
    unsigned char c = (unsigned char)name[i];
    d[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  d[nlen] = '\0';
  memcpy(d + nlen + 1, value, vlen);
  d[nlen + 1 + vlen] = '\0';
  x->hdrs.len += nlen + 1 + vlen + 1;
  x->nhdrs++;
  return 0;
}

/* ---- request validation --------------------------------------------------- */

static int is_tchar(unsigned char c) {
  return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int valid_token(const char *s, size_t n) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++)
    if (!is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

static int valid_value(const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
  return 1;
}

static double opt_seconds(lua_State *L, int t, const char *field) {
  double v = -1;
  if (wxhw_getfield(L, t, field) != LUA_TNIL) {
    if (!lua_isnumber(L, -1)) luaL_error(L, "request.%s must be a number of seconds", field);
    v = lua_tonumber(L, -1);
    if (!(v > 0 && v < 1e6)) luaL_error(L, "request.%s must be > 0", field);
  }
  lua_pop(L, 1);
  return v;
}

/* Appends "Name: value" to the list; returns 0, or 1 after pushing an error. */
static int add_header(lua_State *L, wxhw_xfer *x, const char *name, size_t nlen, int vidx) {
  size_t vlen;
  const char *v = lua_tolstring(L, vidx, &vlen);
  char *line;
  struct curl_slist *l;
  if (!valid_token(name, nlen)) {
    wxhw_http_push_error(L, "input", "header", "header name %.60s is not a valid HTTP token",
                         valid_value(name, nlen) ? name : "(with CR/LF)");
    return 1;
  }
  if (!valid_value(v, vlen)) {
    wxhw_http_push_error(L, "input", "header",
                         "header %.60s: value contains CR, LF or NUL (refused)", name);
    return 1;
  }
  line = malloc(nlen + vlen + 3);
  if (!line) luaL_error(L, "out of memory");
  memcpy(line, name, nlen);
  /* "Name;" is curl's spelling of a header with an empty value */
  if (vlen == 0) {
    line[nlen] = ';';
    line[nlen + 1] = '\0';
  } else {
    line[nlen] = ':';
    line[nlen + 1] = ' ';
    memcpy(line + nlen + 2, v, vlen);
    line[nlen + 2 + vlen] = '\0';
  }
  l = curl_slist_append(x->req_headers, line);
  free(line);
  if (!l) luaL_error(L, "out of memory");
  x->req_headers = l;
  if (nlen == 10 && strncasecmp(name, "user-agent", 10) == 0) x->own_ua = 1;
  return 0;
}

static int read_headers(lua_State *L, wxhw_xfer *x, int req) {
  int t;
  if (wxhw_getfield(L, req, "headers") == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "request.headers must be a table");
  t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    size_t nlen;
    const char *name;
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "request.headers: names must be strings");
    name = lua_tolstring(L, -2, &nlen);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
      for (i = 1; i <= n; i++) {
        int ty = wxhw_rawgeti(L, -1, i);
        if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
          luaL_error(L, "request.headers[%s]: values must be strings", name);
        if (add_header(L, x, name, nlen, -1)) return 1;
        lua_pop(L, 1);
      }
    } else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
      if (add_header(L, x, name, nlen, -1)) return 1;
    } else if (lua_type(L, -1) != LUA_TBOOLEAN || lua_toboolean(L, -1)) {
      luaL_error(L, "request.headers[%s] must be a string or a list of strings", name);
    } /* false: leave the header out */
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* Parses url into x->uh unless it is the URL parsed last time. Returns 0
 * when it is an absolute http(s) URL, else pushes an error. Handing curl the
 * parsed handle (CURLOPT_CURLU) saves it parsing the same URL on every
 * transfer. */
static int set_url(lua_State *L, wxhw_xfer *x, const char *url) {
  char *scheme = NULL;
  CURLUcode rc;
  int bad = 0;
  if (x->uh_url && strcmp(x->uh_url, url) == 0) return 0;
  free(x->uh_url);
  x->uh_url = NULL;
  x->url_checked = 0; /* the direct engine's view of it is computed anew */
  if (!x->uh && (x->uh = curl_url()) == NULL) luaL_error(L, "out of memory");
  /* cleared first: on a handle holding a URL, a relative one would resolve */
  curl_url_set(x->uh, CURLUPART_URL, NULL, 0);
  rc = curl_url_set(x->uh, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    wxhw_http_push_error(L, "input", "url", "bad URL (%s)", curl_url_strerror(rc));
    return 1;
  }
  if (curl_url_get(x->uh, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
    wxhw_http_push_error(L, "input", "scheme", "unsupported URL scheme %.20s (use http or https)",
                         scheme ? scheme : "(none)");
    bad = 1;
  }
  x->url_https = scheme && strcmp(scheme, "https") == 0;
  curl_free(scheme);
  if (!bad && (x->uh_url = strdup(url)) == NULL) luaL_error(L, "out of memory");
  return bad;
}

/* Reads the request table at `req` into x (wxhw_xfer_clear first). 0, or 1
 * after pushing an error object (refused before any I/O); raises on wrong
 * argument types. */
int wxhw_request_read(lua_State *L, wxhw_xfer *x, int req, const wxhw_http_conf *conf) {
  const char *url, *method = "GET", *body = NULL;
  size_t mlen = 3, blen = 0, ulen;
  double timeout, connect_timeout;

  req = lua_absindex(L, req);
  luaL_checktype(L, req, LUA_TTABLE);
  wxhw_xfer_clear(x);
  if (wxhw_getfield(L, req, "url") != LUA_TSTRING) luaL_error(L, "request.url must be a string");
  url = lua_tolstring(L, -1, &ulen); /* stays referenced by the request table */
  lua_pop(L, 1);
  if (wxhw_getfield(L, req, "method") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "request.method must be a string");
    method = lua_tolstring(L, -1, &mlen);
  }
  lua_pop(L, 1);
  if (wxhw_getfield(L, req, "body") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "request.body must be a string");
    body = lua_tolstring(L, -1, &blen);
  }
  lua_pop(L, 1);
  timeout = opt_seconds(L, req, "timeout");
  connect_timeout = opt_seconds(L, req, "connect_timeout");
  x->max_body = conf->max_body;
  if (wxhw_getfield(L, req, "max_body") != LUA_TNIL) {
    lua_Integer mb = lua_tointeger(L, -1);
    if (mb <= 0) luaL_error(L, "request.max_body must be a positive integer");
    x->max_body = (size_t)mb;
  }
  lua_pop(L, 1);

  if (!valid_token(method, mlen)) {
    wxhw_http_push_error(L, "input", "method", "bad HTTP method");
    return 1;
  }
  if (blen > conf->max_request_body) {
    wxhw_http_push_error(L, "input", "too_large", "request body of %zu bytes exceeds max_request_body (%zu)",
                         blen, conf->max_request_body);
    return 1;
  }
  /* libcurl reads the URL as a C string: "/a\0/../b" would quietly become "/a" */
  if (strlen(url) != ulen) {
    wxhw_http_push_error(L, "input", "url", "bad URL (it contains a NUL byte)");
    return 1;
  }
  if (set_url(L, x, url)) return 1;
  if (read_headers(L, x, req)) {
    wxhw_xfer_clear(x);
    return 1;
  }
  x->method = method;
  x->mlen = mlen;
  x->rbody = body;
  x->rblen = blen;
  x->timeout_ms = timeout > 0 ? wxhw_timeout_ms(timeout) : conf->timeout_ms;
  x->connect_timeout_ms = connect_timeout > 0 ? wxhw_timeout_ms(connect_timeout) : conf->connect_timeout_ms;
  return 0;
}

/* ---- results -------------------------------------------------------------- */

/* Builds the headers table: raw access with each name interned once (a
 * repeated name turns into a list, in order). */
static void push_headers(lua_State *L, const wxhw_xfer *x) {
  size_t off = 0;
  int t;
  lua_createtable(L, 0, (int)x->nhdrs);
  t = lua_gettop(L);
  while (off < x->hdrs.len) { /* pairs are complete: on_header adds both or fails */
    const char *name = x->hdrs.data + off;
    size_t nlen = strlen(name);
    const char *value = name + nlen + 1;
    size_t vlen = strlen(value);
    off = (size_t)(value - x->hdrs.data) + vlen + 1;
    lua_pushlstring(L, name, nlen);
    lua_pushvalue(L, -1);
    lua_rawget(L, t);
    switch (lua_type(L, -1)) {
    case LUA_TNIL: /* first occurrence: a string */
      lua_pop(L, 1);
      lua_pushlstring(L, value, vlen);
      lua_rawset(L, t);
      break;
    case LUA_TSTRING: /* second: becomes a list, in order */
      lua_createtable(L, 2, 0);
      lua_insert(L, -2);
      lua_rawseti(L, -2, 1);
      lua_pushlstring(L, value, vlen);
      lua_rawseti(L, -2, 2);
      lua_rawset(L, t);
      break;
    default:
      lua_pushlstring(L, value, vlen);
      lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
      lua_pop(L, 2);
    }
  }
}

typedef struct {
  const char *reason;
  int retryable;
} classification;

static classification classify(CURLcode c, int too_large, int sent) {
  classification r = {"protocol", 0};
  if (too_large) c = CURLE_FILESIZE_EXCEEDED;
  switch (c) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: r.reason = "dns"; r.retryable = 1; break;
  case CURLE_COULDNT_CONNECT: r.reason = "connect"; r.retryable = 1; break;
  case CURLE_OPERATION_TIMEDOUT: r.reason = "timeout"; r.retryable = 1; break;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE: r.reason = "reset"; r.retryable = 1; break;
  case CURLE_FILESIZE_EXCEEDED: r.reason = "too_large"; break;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_USE_SSL_FAILED: r.reason = "tls"; break;
  case CURLE_URL_MALFORMAT: r.reason = "url"; break;
  /* once the request went out, this is the server's reply ("Received
   * HTTP/0.9", an unknown HTTP version): a protocol error, not the URL */
  case CURLE_UNSUPPORTED_PROTOCOL: r.reason = sent ? "protocol" : "url"; break;
  default: break;
  }
  return r;
}

void wxhw_xfer_push_response(lua_State *L, wxhw_xfer *x, long status, const char *version, double total) {
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  push_headers(L, x);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
  lua_setfield(L, -2, "body");
  lua_pushnumber(L, total);
  lua_setfield(L, -2, "time");
  lua_pushstring(L, version);
  lua_setfield(L, -2, "http_version");
}

void wxhw_xfer_push_failure(lua_State *L, wxhw_xfer *x, CURLcode code, const char *detail, int sent,
                            double total) {
  classification c;
  x->code = code;
  if (code == CURLE_FILESIZE_EXCEEDED) x->too_large = 1;
  c = classify(code, x->too_large, sent);
  if (x->too_large)
    wxhw_http_push_error(L, "http", c.reason, "too_large: response body exceeds %zu bytes", x->max_body);
  else
    wxhw_http_push_error(L, strcmp(c.reason, "url") == 0 ? "input" : "http", c.reason, "%s: %s", c.reason,
                         detail);
  lua_pushstring(L, detail);
  lua_setfield(L, -2, "detail");
  lua_pushinteger(L, (lua_Integer)code);
  lua_setfield(L, -2, "curl_code");
  lua_pushboolean(L, c.retryable);
  lua_setfield(L, -2, "retryable");
  /* whether any request bytes left: a POST that never went out may be repeated */
  lua_pushboolean(L, sent);
  lua_setfield(L, -2, "sent");
  lua_pushnumber(L, total);
  lua_setfield(L, -2, "time");
}

void wxhw_xfer_clear(wxhw_xfer *x) {
  if (x->req_headers) {
    /* the handle must not keep pointing at a list about to be freed */
    if (x->easy) curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->base_hdrs);
    curl_slist_free_all(x->req_headers);
    x->req_headers = NULL;
  }
  x->own_ua = 0;
  if (x->body.cap > BODY_KEEP) {
    free(x->body.data);
    x->body.data = NULL;
    x->body.cap = 0;
  }
  x->body.len = 0;
  x->hdrs.len = 0;
  x->nhdrs = 0;
  x->too_large = 0;
  x->head_ended = 0;
  x->method = x->rbody = NULL;
  x->conn = NULL;
  x->dstate = WXHW_DX_IDLE;
  x->req.len = 0;
  x->req_off = 0;
  x->retried = 0;
  x->dcode = CURLE_OK;
  x->dmsg[0] = '\0';
  if (x->req.cap > BODY_KEEP) {
    free(x->req.data);
    x->req.data = NULL;
    x->req.cap = 0;
  }
}

void wxhw_xfer_free(wxhw_xfer *x) {
  wxhw_xfer_clear(x);
  free(x->body.data);
  free(x->hdrs.data);
  x->body.data = x->hdrs.data = NULL;
  x->body.cap = x->hdrs.cap = 0;
  if (x->easy) curl_easy_cleanup(x->easy);
  x->easy = NULL;
  x->attached = 0;
  curl_slist_free_all(x->base_hdrs);
  x->base_hdrs = NULL;
  curl_url_cleanup(x->uh); /* after the easy handle that used it */
  x->uh = NULL;
  free(x->uh_url);
  x->uh_url = NULL;
  free(x->origin);
  free(x->target);
  free(x->hosthdr);
  x->origin = x->target = x->hosthdr = NULL;
  free(x->req.data);
  x->req.data = NULL;
  x->req.cap = 0;
  wxhw_h1_free(&x->parser);
}
