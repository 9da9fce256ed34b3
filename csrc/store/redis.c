/* wxhw.core.redis: one hiredis connection per object (connect{...}),
 * commands as argv (no protocol code of our own). The token store's Redis
 * transport (also wxhw.core.tokenstore.redis_connect, its old name); the
 * atomic parts of that store (compare-and-invalidate, refresh leases, commit)
 * are Lua scripts run server-side with EVALSHA, in lua/wxhw/store/redis.lua.
 *
 * A broken connection is dropped and re-opened by the next command, so a
 * Redis restart heals without the caller rebuilding anything. Blocking I/O:
 * inside nginx use the ngx_shared store (cosockets), not this one. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "tokenstore.h"

#define REDIS_CLASS "wxhw.TokenRedis"
#define MAX_ARGS 64

typedef struct {
  redisContext *c; /* NULL when disconnected */
  int closed;
  int port;
  int db;
  double timeout;
  char host[128];
  char password[128]; /* wiped on close; never printed */
} rstore_t;

static struct timeval to_tv(double s) {
  struct timeval tv;
  tv.tv_sec = (time_t)s;
  tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
  return tv;
}

static void drop(rstore_t *r) {
  if (r->c) {
    redisFree(r->c);
    r->c = NULL;
  }
}

/* Runs one command on the open context; returns the reply or NULL (and drops
 * the connection) on I/O failure. */
static redisReply *run(rstore_t *r, int argc, const char **argv, const size_t *lens) {
  redisReply *rep = (redisReply *)redisCommandArgv(r->c, argc, argv, lens);
  if (rep == NULL) return NULL;
  return rep;
}

/* Connects (AUTH, SELECT) if needed; returns 0 or writes a reason to err. */
static int ensure(rstore_t *r, char *err, size_t errlen) {
  redisReply *rep;
  if (r->c) return 0;
  r->c = redisConnectWithTimeout(r->host, r->port, to_tv(r->timeout));
  if (r->c == NULL || r->c->err) {
    snprintf(err, errlen, "cannot connect to redis at %s:%d: %s", r->host, r->port,
             r->c ? r->c->errstr : "out of memory");
    drop(r);
    return -1;
  }
  redisSetTimeout(r->c, to_tv(r->timeout));
  if (r->password[0]) {
    const char *argv[2] = {"AUTH", r->password};
    size_t lens[2] = {4, strlen(r->password)};
    rep = run(r, 2, argv, lens);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
      snprintf(err, errlen, "redis at %s:%d refused the password", r->host, r->port);
      if (rep) freeReplyObject(rep);
      drop(r);
      return -1;
    }
    freeReplyObject(rep);
  }
  if (r->db) {
    char db[16];
    const char *argv[2] = {"SELECT", db};
    size_t lens[2];
    snprintf(db, sizeof db, "%d", r->db);
    lens[0] = 6;
    lens[1] = strlen(db);
    rep = run(r, 2, argv, lens);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
      snprintf(err, errlen, "redis at %s:%d: cannot select db %d", r->host, r->port, r->db);
      if (rep) freeReplyObject(rep);
      drop(r);
      return -1;
    }
    freeReplyObject(rep);
  }
  return 0;
}

static rstore_t *check_redis(lua_State *L) {
  rstore_t *r = (rstore_t *)luaL_checkudata(L, 1, REDIS_CLASS);
  if (r->closed) luaL_error(L, "redis token store is closed");
  return r;
}

/* Pushes a reply; Redis nil becomes false so it never looks like a failure. */
static void push_reply(lua_State *L, const redisReply *rep, int depth) {
  size_t i;
  luaL_checkstack(L, 4, "redis reply too deep");
  switch (rep->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    lua_pushlstring(L, rep->str, rep->len);
    break;
  case REDIS_REPLY_INTEGER:
    lua_pushinteger(L, (lua_Integer)rep->integer);
    break;
  case REDIS_REPLY_ARRAY:
    lua_createtable(L, (int)rep->elements, 0);
    for (i = 0; i < rep->elements; i++) {
      if (depth > 8) lua_pushboolean(L, 0);
      else push_reply(L, rep->element[i], depth + 1);
      lua_rawseti(L, -2, (int)i + 1);
    }
    break;
  default: /* NIL, and ERROR nested inside arrays */
    lua_pushboolean(L, 0);
  }
}

/* r:command(name, arg...) -> reply | nil, err  (err.kind = "store"; a Redis
 * error reply also sets err.redis_error = true, e.g. NOSCRIPT; err.closed =
 * true when the server had closed the connection, so the command did not run
 * and may be sent again. After a timeout it may still run: no err.closed.) */
static int l_command(lua_State *L) {
  rstore_t *r = check_redis(L);
  int argc = lua_gettop(L) - 1, i;
  const char *argv[MAX_ARGS];
  size_t lens[MAX_ARGS];
  char err[300];
  redisReply *rep;
  luaL_argcheck(L, argc >= 1 && argc <= MAX_ARGS, 2, "1..64 command words expected");
  for (i = 0; i < argc; i++) {
    int t = lua_type(L, i + 2);
    luaL_argcheck(L, t == LUA_TSTRING || t == LUA_TNUMBER, i + 2, "string or number expected");
    argv[i] = lua_tolstring(L, i + 2, &lens[i]);
  }
  if (ensure(r, err, sizeof err) != 0) return wxhw_fail(L, "store", "%s", err);
  rep = run(r, argc, argv, lens);
  if (rep == NULL) {
    int e = errno;
    int closed = r->c->err == REDIS_ERR_EOF || (r->c->err == REDIS_ERR_IO && (e == ECONNRESET || e == EPIPE));
    snprintf(err, sizeof err, "redis at %s:%d: %s", r->host, r->port, r->c->errstr);
    drop(r);
    wxhw_fail(L, "store", "%s", err);
    if (closed) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "closed");
    }
    return 2;
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    wxhw_fail(L, "store", "redis: %.*s", (int)(rep->len > 400 ? 400 : rep->len), rep->str);
    freeReplyObject(rep);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "redis_error");
    return 2;
  }
  push_reply(L, rep, 0);
  freeReplyObject(rep);
  return 1;
}

static void copy_field(lua_State *L, int t, const char *k, char *dst, size_t n) {
  size_t len;
  const char *s;
  wxhw_getfield(L, t, k);
  s = lua_tolstring(L, -1, &len);
  if (s) {
    luaL_argcheck(L, len < n, 1, "redis option too long");
    memcpy(dst, s, len + 1);
  }
  lua_pop(L, 1);
}

/* redis_connect{host="127.0.0.1", port=6379, timeout=1, password=, db=0}
 * -> store | nil, err. */
static int l_redis_connect(lua_State *L) {
  rstore_t *r;
  char err[300];
  luaL_checktype(L, 1, LUA_TTABLE);
  r = (rstore_t *)lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, REDIS_CLASS);
  strcpy(r->host, "127.0.0.1");
  copy_field(L, 1, "host", r->host, sizeof r->host);
  copy_field(L, 1, "password", r->password, sizeof r->password);
  wxhw_getfield(L, 1, "port");
  r->port = (int)luaL_optinteger(L, -1, 6379);
  wxhw_getfield(L, 1, "db");
  r->db = (int)luaL_optinteger(L, -1, 0);
  wxhw_getfield(L, 1, "timeout");
  r->timeout = luaL_optnumber(L, -1, 1.0);
  lua_pop(L, 3);
  luaL_argcheck(L, r->port > 0 && r->port < 65536, 1, "port must be 1..65535");
  luaL_argcheck(L, r->timeout > 0 && r->timeout <= 60, 1, "timeout must be in (0, 60] seconds");
  if (ensure(r, err, sizeof err) != 0) return wxhw_fail(L, "store", "%s", err);
  return 1;
}

static int l_close(lua_State *L) {
  rstore_t *r = (rstore_t *)luaL_checkudata(L, 1, REDIS_CLASS);
  drop(r);
  r->closed = 1;
  memset(r->password, 0, sizeof r->password);
  return 0;
}

static int l_tostring(lua_State *L) {
  rstore_t *r = (rstore_t *)luaL_checkudata(L, 1, REDIS_CLASS);
  lua_pushfstring(L, "wxhw.TokenRedis %s:%d db %d (%s)", r->host, r->port, r->db,
                  r->closed ? "closed" : r->c ? "connected" : "disconnected");
  return 1;
}

static void redis_class(lua_State *L) {
  static const luaL_Reg methods[] = {{"command", l_command}, {"close", l_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
  wxhw_newclass(L, REDIS_CLASS, methods, meta);
}

/* wxhw.core.tokenstore.redis_connect: the old name, kept as an alias. */
void wxhw_tokenstore_redis_register(lua_State *L) {
  redis_class(L);
  lua_pushcfunction(L, l_redis_connect);
  lua_setfield(L, -2, "redis_connect");
}

int wxhw_open_redis(lua_State *L) {
  redis_class(L);
  lua_newtable(L);
  lua_pushcfunction(L, l_redis_connect);
  lua_setfield(L, -2, "connect");
  return 1;
}
