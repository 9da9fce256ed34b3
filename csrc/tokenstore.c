/* wxhw.core.tokenstore: primitives under the token manager (lua/wxhw/token.lua).
 *   shm_open(path[, nslots])     file-backed table shared by the processes of a host
 *   redis_connect{host=, port=, timeout=, password=, db=}   hiredis connection
 *   pid()                        this process (lease owners; clocks are wxhw.clock)
 *   alive(pid)                   false only when no such process exists (kill(pid, 0) = ESRCH)
 *   hostname()                   gethostname(), for lease owner ids that name their host */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "tokenstore.h"

static int l_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* The test the shm store applies to lease owners: EPERM means it exists. */
static int l_alive(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  lua_pushboolean(L, pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH);
  return 1;
}

static int l_hostname(lua_State *L) {
  char buf[256];
  if (gethostname(buf, sizeof buf) != 0) return 0;
  buf[sizeof buf - 1] = '\0';
  lua_pushstring(L, buf);
  return 1;
}

int wxhw_open_tokenstore(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"pid", l_pid}, {"alive", l_alive}, {"hostname", l_hostname}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  wxhw_tokenstore_shm_register(L);
  wxhw_tokenstore_redis_register(L);
  return 1;
}
