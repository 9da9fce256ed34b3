/* wxhw.http: an HTTP client on libcurl. One wxhw.Http object holds a curl
 * share handle (connection cache, DNS, TLS sessions), a reused easy handle for
 * sequential requests and reused slots for the multi interface, so repeated
 * calls to one host ride the same connection. HTTP/1.1 requests without a
 * proxy take the direct engine (engine_direct.c) unless engine="curl"; both
 * engines run on one event loop (loop.c). prepare() below is the one place
 * that picks the engine of a request. All memory hangs off the userdata: a
 * Lua error at any point leaks nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

#define HTTP_CLASS "wxhw.Http"
#define DEFAULT_TIMEOUT_MS 10000L
#define DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define DEFAULT_MAX_BODY ((size_t)16 * 1024 * 1024)
#define DEFAULT_MAX_CONNECTIONS 32L
#define DEFAULT_CONCURRENCY 16L
#define MAX_CONCURRENCY 1024L

typedef struct {
  CURLSH *share;
  wxhw_loop loop;     /* multi handle + epoll for every transfer; multi NULL until used */
  wxhw_http_conf conf;
  wxhw_dpool *pool;   /* the direct engine's connections; NULL until used */
  wxhw_xfer single;   /* for request() */
  wxhw_xfer *slots;   /* for batch(): one per request in flight */
  size_t nslots;
  size_t inflight;    /* slots inside the multi handle */
  lua_Integer requests;
} wxhw_http;

static wxhw_http *check_open(lua_State *L) {
  wxhw_http *h = luaL_checkudata(L, 1, HTTP_CLASS);
  if (!h->share) luaL_error(L, "wxhw.Http: the client is closed");
  return h;
}

/* Removes batch slots that a Lua error left inside the multi handle (or
 * holding a direct connection mid-exchange). */
static void detach_slots(wxhw_http *h) {
  size_t i;
  for (i = 0; i < h->nslots; i++) {
    if (h->slots[i].active) {
      if (h->slots[i].engine == WXHW_ENGINE_DIRECT) wxhw_direct_abort(h->pool, &h->slots[i]);
      else curl_multi_remove_handle(h->loop.multi, h->slots[i].easy);
      h->slots[i].active = 0;
    }
  }
  h->inflight = 0;
}

static void http_release(wxhw_http *h) {
  size_t i;
  if (h->pool) {
    detach_slots(h);
    wxhw_direct_abort(h->pool, &h->single);
    wxhw_dpool_free(h->pool); /* its handles sit in the multi handle */
    h->pool = NULL;
  }
  for (i = 0; i < h->nslots; i++) wxhw_xfer_free(&h->slots[i]);
  free(h->slots);
  h->slots = NULL;
  h->nslots = 0;
  wxhw_xfer_free(&h->single);
  if (h->loop.multi) wxhw_loop_free(&h->loop);
  if (h->share) curl_share_cleanup(h->share); /* after every easy handle is gone */
  h->share = NULL;
  free(h->conf.proxy);
  free(h->conf.proxy_safe);
  free(h->conf.ca_file);
  free(h->conf.user_agent);
  free(h->conf.no_proxy);
  free(h->conf.env_proxy_http);
  free(h->conf.env_proxy_https);
  memset(&h->conf, 0, sizeof h->conf);
}

static int http_gc(lua_State *L) {
  http_release(luaL_checkudata(L, 1, HTTP_CLASS));
  return 0;
}

static int http_tostring(lua_State *L) {
  wxhw_http *h = luaL_checkudata(L, 1, HTTP_CLASS);
  if (!h->share) {
    lua_pushfstring(L, HTTP_CLASS " (closed) %p", (void *)h);
    return 1;
  }
  lua_pushfstring(L, HTTP_CLASS " (engine=%s timeout=%fs connect_timeout=%fs max_body=%d max_connections=%d http2=%s",
                  h->conf.engine_curl ? "curl" : "auto",
                  (lua_Number)h->conf.timeout_ms / 1000, (lua_Number)h->conf.connect_timeout_ms / 1000,
                  (int)h->conf.max_body, (int)h->conf.max_connections, h->conf.http2 ? "on" : "off");
  if (h->conf.proxy_safe) lua_pushfstring(L, " proxy=%s", h->conf.proxy_safe);
  else lua_pushliteral(L, "");
  if (h->conf.ca_file) lua_pushfstring(L, " ca_file=%s", h->conf.ca_file);
  else lua_pushliteral(L, "");
  lua_pushfstring(L, " requests=%d) %p", (int)h->requests, (void *)h);
  lua_concat(L, 4);
  return 1;
}

/* ---- construction --------------------------------------------------------- */

static char *dup_or_raise(lua_State *L, const char *s) {
  char *d = strdup(s);
  if (!d) luaL_error(L, "out of memory");
  return d;
}

static long opt_ms(lua_State *L, const char *name, long dflt) {
  double v;
  if (wxhw_getfield(L, 1, name) == LUA_TNIL) {
    lua_pop(L, 1);
    return dflt;
  }
  if (!lua_isnumber(L, -1)) luaL_error(L, "wxhw.http.new: %s must be a number of seconds", name);
  v = lua_tonumber(L, -1);
  if (!(v > 0 && v < 1e6)) luaL_error(L, "wxhw.http.new: %s must be > 0", name);
  lua_pop(L, 1);
  return wxhw_timeout_ms(v);
}

static lua_Integer opt_int(lua_State *L, const char *name, lua_Integer dflt, lua_Integer max) {
  lua_Integer v;
  if (wxhw_getfield(L, 1, name) == LUA_TNIL) {
    lua_pop(L, 1);
    return dflt;
  }
  v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
  if (v <= 0 || v > max) luaL_error(L, "wxhw.http.new: %s must be an integer in 1..%d", name, (int)max);
  lua_pop(L, 1);
  return v;
}

static const char *opt_str(lua_State *L, const char *name) {
  const char *s = NULL;
  size_t n = 0;
  int t = wxhw_getfield(L, 1, name);
  if (t == LUA_TSTRING) s = lua_tolstring(L, -1, &n);
  else if (t != LUA_TNIL) luaL_error(L, "wxhw.http.new: %s must be a string", name);
  /* read as C strings: a NUL would silently cut a proxy URL or a CA path short */
  if (s && strlen(s) != n) luaL_error(L, "wxhw.http.new: %s contains a NUL byte", name);
  lua_pop(L, 1); /* the options table keeps the string alive */
  return s;
}

static const char *const known_options[] = {
    "timeout", "connect_timeout", "proxy", "ca_file", "max_connections", "http2",
    "user_agent", "max_body", "max_request_body", "max_idle", "engine", NULL};

static void check_option_names(lua_State *L) {
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    int i, ok = 0;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    for (i = 0; known_options[i]; i++) ok |= strcmp(k, known_options[i]) == 0;
    if (!ok) luaL_error(L, "wxhw.http.new: unknown option '%s'", k);
    lua_pop(L, 1);
  }
}

/* The proxy URL without user:password, for printing. */
static char *proxy_for_display(const char *proxy) {
  CURLU *u = curl_url();
  char *out = NULL, *tmp = NULL;
  if (u && curl_url_set(u, CURLUPART_URL, proxy, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
    curl_url_set(u, CURLUPART_USER, NULL, 0);
    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
    curl_url_set(u, CURLUPART_OPTIONS, NULL, 0);
    if (curl_url_get(u, CURLUPART_URL, &tmp, 0) == CURLUE_OK) out = strdup(tmp);
    curl_free(tmp);
  }
  curl_url_cleanup(u);
  return out ? out : strdup("(unparsable)");
}

/* The first of the variables that is set, as libcurl looks them up. */
static const char *env_first(const char *a, const char *b, const char *c, const char *d) {
  const char *v = getenv(a);
  if (!v && b) v = getenv(b);
  if (!v && c) v = getenv(c);
  if (!v && d) v = getenv(d);
  return v;
}

static char *env_proxy(lua_State *L, const char *v) { return v && *v ? dup_or_raise(L, v) : NULL; }

/* The proxy variables as libcurl reads them (http_proxy has no upper-case
 * form; a set but empty one means no proxy, without falling back to
 * all_proxy), read once for both engines: a request the direct engine could
 * take goes through libcurl instead when a proxy applies to it, and libcurl
 * gets these values rather than the environment of the moment. */
static void read_proxy_env(lua_State *L, wxhw_http_conf *conf) {
  const char *np = env_first("no_proxy", "NO_PROXY", NULL, NULL);
  conf->env_proxy_http = env_proxy(L, env_first("http_proxy", "all_proxy", "ALL_PROXY", NULL));
  conf->env_proxy_https = env_proxy(L, env_first("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"));
  if (np && *np) conf->no_proxy = dup_or_raise(L, np);
}

static int http_new(lua_State *L) {
  wxhw_http *h;
  const char *s;
  FILE *f;
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  check_option_names(L);
  /* born closed: if anything below raises, __gc finds nothing to free */
  h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  luaL_setmetatable(L, HTTP_CLASS);

  h->conf.timeout_ms = opt_ms(L, "timeout", DEFAULT_TIMEOUT_MS);
  h->conf.connect_timeout_ms = opt_ms(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_MS);
  h->conf.max_idle_s = (long)opt_int(L, "max_idle", 0, 86400);
  h->conf.max_connections = (long)opt_int(L, "max_connections", DEFAULT_MAX_CONNECTIONS, 65536);
  h->conf.max_body = (size_t)opt_int(L, "max_body", (lua_Integer)DEFAULT_MAX_BODY, (lua_Integer)1 << 30);
  h->conf.max_request_body =
      (size_t)opt_int(L, "max_request_body", (lua_Integer)DEFAULT_MAX_BODY, (lua_Integer)1 << 30);
  if (wxhw_getfield(L, 1, "http2") != LUA_TNIL) {
    if (!lua_isboolean(L, -1)) luaL_error(L, "wxhw.http.new: http2 must be a boolean");
    h->conf.http2 = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  if ((s = opt_str(L, "engine")) != NULL) {
    if (strcmp(s, "curl") == 0) h->conf.engine_curl = 1;
    else if (strcmp(s, "auto") != 0) luaL_error(L, "wxhw.http.new: engine must be \"auto\" or \"curl\"");
  }
  read_proxy_env(L, &h->conf);
  if ((s = opt_str(L, "proxy")) != NULL && *s) {
    h->conf.proxy = dup_or_raise(L, s);
    h->conf.proxy_safe = proxy_for_display(s);
    if (!h->conf.proxy_safe) luaL_error(L, "out of memory");
  }
  if ((s = opt_str(L, "ca_file")) != NULL) {
    if ((f = fopen(s, "rb")) == NULL)
      return wxhw_fail(L, "input", "ca_file %s cannot be read", s);
    fclose(f);
    h->conf.ca_file = dup_or_raise(L, s);
  }
  s = opt_str(L, "user_agent");
  if (s) {
    size_t i;
    for (i = 0; s[i]; i++)
      if (s[i] == '\r' || s[i] == '\n') return wxhw_fail(L, "input", "user_agent contains CR or LF");
    h->conf.user_agent = dup_or_raise(L, s);
  } else {
    char ua[96];
    snprintf(ua, sizeof ua, "wxhw/" WXHW_VERSION " libcurl/%s", curl_version_info(CURLVERSION_NOW)->version);
    h->conf.user_agent = dup_or_raise(L, ua);
  }

  h->share = curl_share_init();
  if (!h->share) luaL_error(L, "curl_share_init failed");
  if (curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
      curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
      curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
    luaL_error(L, "libcurl cannot share connections (needs libcurl >= 7.57)");
  return 1;
}

/* ---- requests ------------------------------------------------------------- */

static void ensure_loop(lua_State *L, wxhw_http *h) {
  if (h->pool) return;
  if (!h->loop.multi && wxhw_loop_init(&h->loop, h->conf.max_connections) != 0)
    luaL_error(L, "cannot create the curl multi handle / epoll instance");
  if ((h->pool = wxhw_dpool_new(&h->loop, &h->conf)) == NULL) luaL_error(L, "out of memory");
  h->loop.on_direct = wxhw_direct_on_ready;
  h->loop.direct_ud = h->pool;
}

/* Reads the request table at `req` into x and readies the engine that will
 * carry it: the one place that picks an engine. Returns 0, or 1 after
 * pushing an error object (the request was refused before any I/O). */
static int prepare(lua_State *L, wxhw_http *h, wxhw_xfer *x, int req) {
  if (wxhw_request_read(L, x, req, &h->conf)) return 1;
  if (wxhw_direct_eligible(L, x, &h->conf)) {
    x->engine = WXHW_ENGINE_DIRECT;
    return wxhw_direct_prepare(L, x, &h->conf);
  }
  x->engine = WXHW_ENGINE_CURL;
  return wxhw_curl_prepare(L, x, h->share, &h->conf);
}

/* Hands the multi handle's finished transfers on: connects of the direct
 * engine to it, others (batch slots) to `done`. */
static void drain_messages(wxhw_http *h, void (*done)(void *ud, wxhw_xfer *x, CURLcode rc), void *ud) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(h->loop.multi, &left)) != NULL) {
    unsigned char *tag = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&tag);
    if (!tag) continue;
    if (*tag == 1) wxhw_direct_connected(h->pool, (wxhw_dconn *)(void *)tag, msg->data.result);
    else if (done) done(ud, (wxhw_xfer *)(void *)tag, msg->data.result);
  }
}

/* Runs one direct transfer to its end on the loop. */
static void run_direct_single(lua_State *L, wxhw_http *h, wxhw_xfer *x) {
  wxhw_direct_start(h->pool, x);
  while (x->dstate != WXHW_DX_DONE) {
    if (x->dstate == WXHW_DX_WAIT) wxhw_direct_start(h->pool, x);
    h->loop.wake = wxhw_direct_check_time(h->pool, x, wxhw_loop_now_ms());
    if (x->dstate == WXHW_DX_DONE) break;
    if (wxhw_loop_step(&h->loop) != CURLM_OK) {
      h->loop.wake = -1;
      wxhw_direct_abort(h->pool, x);
      luaL_error(L, "libcurl multi interface failed");
    }
    drain_messages(h, NULL, NULL);
  }
  h->loop.wake = -1;
}

static void attach(lua_State *L, wxhw_http *h, wxhw_xfer *x) {
  if (x->attached) return;
  if (wxhw_loop_attach(&h->loop, x->easy) != 0) luaL_error(L, "libcurl refused the socket callbacks");
  x->attached = 1;
}

/* Runs the single transfer through the client's own multi handle and epoll
 * loop rather than curl_easy_perform: no wake-up socketpair to poll, socket
 * readiness comes from epoll, and the keep-alive socket stays in the epoll
 * set between requests. */
static CURLcode perform_single(lua_State *L, wxhw_http *h) {
  CURLM *m = h->loop.multi;
  CURL *e = h->single.easy;
  CURLcode code = CURLE_OK;
  int done = 0;
  if (curl_multi_add_handle(m, e) != CURLM_OK) luaL_error(L, "curl_multi_add_handle failed");
  while (!done) {
    CURLMsg *msg;
    int left;
    if (wxhw_loop_step(&h->loop) != CURLM_OK) {
      curl_multi_remove_handle(m, e);
      luaL_error(L, "libcurl multi interface failed");
    }
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) {
        code = msg->data.result;
        done = 1;
      }
    }
  }
  curl_multi_remove_handle(m, e);
  return code;
}

static int http_request(lua_State *L) {
  wxhw_http *h = check_open(L);
  CURLcode code;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  ensure_loop(L, h);
  if (h->inflight) detach_slots(h); /* a batch stopped by an error: its transfers must not run here */
  wxhw_direct_abort(h->pool, &h->single); /* likewise a request stopped by an error */
  if (prepare(L, h, &h->single, 2)) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (h->single.engine == WXHW_ENGINE_DIRECT) {
    int ok;
    h->requests++;
    run_direct_single(L, h, &h->single);
    ok = wxhw_direct_push_result(L, &h->single);
    wxhw_xfer_clear(&h->single);
    if (ok) return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  attach(L, h, &h->single);
  h->requests++;
  code = perform_single(L, h);
  if (wxhw_curl_push_result(L, &h->single, code)) {
    wxhw_xfer_clear(&h->single);
    return 1;
  }
  wxhw_xfer_clear(&h->single);
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

static void ensure_multi(lua_State *L, wxhw_http *h, size_t nslots) {
  ensure_loop(L, h);
  if (nslots > h->nslots) {
    wxhw_xfer *s = realloc(h->slots, nslots * sizeof *s);
    if (!s) luaL_error(L, "out of memory");
    memset(s + h->nslots, 0, (nslots - h->nslots) * sizeof *s);
    h->slots = s;
    h->nslots = nslots;
  }
}

typedef struct {
  lua_State *L;
  wxhw_http *h;
  size_t *active;
  lua_Integer *done;
} batch_ctx;

/* A libcurl-engine slot finished: its result goes in place. */
static void batch_done(void *ud, wxhw_xfer *x, CURLcode rc) {
  batch_ctx *b = ud;
  curl_multi_remove_handle(b->h->loop.multi, x->easy);
  x->active = 0;
  (*b->active)--;
  b->h->inflight--;
  wxhw_curl_push_result(b->L, x, rc);
  lua_rawseti(b->L, 3, (int)x->index);
  wxhw_xfer_clear(x);
  (*b->done)++;
}

/* client:batch(requests[, {concurrency=N}]) -> results, in request order; each
 * result is a response table or an error object (wxhw.errors.is). */
static int http_batch(lua_State *L) {
  wxhw_http *h = check_open(L);
  lua_Integer n, next = 1, done = 0, conc = DEFAULT_CONCURRENCY;
  size_t i, nslots, active = 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (wxhw_getfield(L, 3, "concurrency") != LUA_TNIL) {
      conc = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
      if (conc < 1 || conc > MAX_CONCURRENCY)
        luaL_error(L, "batch: concurrency must be an integer in 1..%d", (int)MAX_CONCURRENCY);
    }
    lua_pop(L, 1);
  }
  lua_settop(L, 2);
  n = (lua_Integer)lua_rawlen(L, 2);
  for (i = 1; i <= (size_t)n; i++) { /* misuse raises before any request is sent */
    if (wxhw_rawgeti(L, 2, (lua_Integer)i) != LUA_TTABLE) luaL_error(L, "batch: requests[%d] is not a table", (int)i);
    lua_pop(L, 1);
  }
  lua_createtable(L, (int)n, 0); /* results, index 3 */
  if (n == 0) return 1;
  nslots = (size_t)(n < conc ? n : conc);
  ensure_loop(L, h);
  detach_slots(h); /* before the slots may move: connections point at them */
  ensure_multi(L, h, nslots);

  while (done < n) {
    int finished = 0;
    long long now, wake = -1;
    for (i = 0; i < nslots && next <= n; i++) {
      wxhw_xfer *x = &h->slots[i];
      while (!x->active && next <= n) {
        wxhw_rawgeti(L, 2, next);
        x->index = next++;
        if (prepare(L, h, x, -1)) { /* refused locally */
          lua_rawseti(L, 3, (int)x->index);
          lua_pop(L, 1);
          done++;
          continue;
        }
        lua_pop(L, 1);
        x->active = 1;
        active++;
        h->inflight++;
        h->requests++;
        if (x->engine == WXHW_ENGINE_DIRECT) {
          wxhw_direct_start(h->pool, x);
          continue;
        }
        attach(L, h, x);
        if (curl_multi_add_handle(h->loop.multi, x->easy) != CURLM_OK) luaL_error(L, "curl_multi_add_handle failed");
      }
    }
    /* direct transfers: results, connections freed for waiting ones, timeouts */
    now = wxhw_loop_now_ms();
    for (i = 0; i < nslots; i++) {
      wxhw_xfer *x = &h->slots[i];
      long long dl;
      if (!x->active || x->engine != WXHW_ENGINE_DIRECT) continue;
      if (x->dstate == WXHW_DX_WAIT) wxhw_direct_start(h->pool, x);
      dl = wxhw_direct_check_time(h->pool, x, now);
      if (dl >= 0 && (wake < 0 || dl < wake)) wake = dl;
      if (x->dstate != WXHW_DX_DONE) continue;
      x->active = 0;
      active--;
      h->inflight--;
      wxhw_direct_push_result(L, x);
      lua_rawseti(L, 3, (int)x->index);
      wxhw_xfer_clear(x);
      done++;
      finished = 1;
    }
    if (finished || active == 0) continue; /* refill the free slots first */
    h->loop.wake = wake;
    if (wxhw_loop_step(&h->loop) != CURLM_OK) {
      h->loop.wake = -1;
      luaL_error(L, "libcurl multi interface failed");
    }
    h->loop.wake = -1;
    {
      batch_ctx bc;
      bc.L = L;
      bc.h = h;
      bc.active = &active;
      bc.done = &done;
      drain_messages(h, batch_done, &bc);
    }
  }
  return 1;
}

static int http_close(lua_State *L) {
  http_release(luaL_checkudata(L, 1, HTTP_CLASS));
  return 0;
}

int wxhw_open_http(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"request", http_request}, {"batch", http_batch}, {"close", http_close}, {NULL, NULL}};
  static const luaL_Reg metamethods[] = {
      {"__gc", http_gc}, {"__close", http_gc}, {"__tostring", http_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"new", http_new}, {NULL, NULL}};
  curl_global_init(CURL_GLOBAL_DEFAULT); /* reference counted by libcurl */
  wxhw_newclass(L, HTTP_CLASS, methods, metamethods);
  luaL_newlib(L, funcs);
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
  lua_setfield(L, -2, "curl_version");
  return 1;
}
