/* wxhw.core.tokenstore: primitives under the token manager (lua/wxhw/token.lua).
 *   shm_open(path[, nslots])     file-backed table shared by the processes of a host
 *   redis_connect{host=, port=, timeout=, password=, db=}   hiredis connection
 *   sleep(seconds), monotonic(), pid()                      helpers for waiting */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "tokenstore.h"

double wxhw_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Blocking sleep for plain Lua (busted, cron jobs); inside nginx the Lua layer
 * uses ngx.sleep instead. */
static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  if (s < 0) s = 0;
  if (s > 3600) return luaL_argerror(L, 1, "at most 3600 seconds");
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return 0;
}

static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, wxhw_monotonic());
  return 1;
}

static int l_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  return 1;
}

int wxhw_open_tokenstore(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"sleep", l_sleep}, {"monotonic", l_monotonic}, {"pid", l_pid}, {"now", l_now}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  wxhw_tokenstore_shm_register(L);
  wxhw_tokenstore_redis_register(L);
  return 1;
}
