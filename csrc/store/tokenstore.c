/* wxhw.core.tokenstore: primitives under the token manager (lua/wxhw/token.lua).
 *   shm_open(path[, nslots])     file-backed table shared by the processes of a host
 *   redis_connect{host=, port=, timeout=, password=, db=}   = wxhw.core.redis.connect (store/redis.c)
 *   pid()                        this process (lease owners; clocks are wxhw.clock) */
#include <unistd.h>

#include "tokenstore.h"

static int l_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

int wxhw_open_tokenstore(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"pid", l_pid}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  wxhw_tokenstore_shm_register(L);
  wxhw_tokenstore_redis_register(L);
  return 1;
}
