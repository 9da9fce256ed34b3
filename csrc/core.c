/* wxhw.core: one shared object, one exported entry point. Each concern lives in
 * its own file and contributes one submodule table. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "wxhw.h"

#define WXHW_VERSION "0.2.0" /* = the rockspec's version; spec/cli_spec.lua checks */
#define ERROR_CLASS "wxhw.Error"

static const struct {
  const char *name;
  lua_CFunction open;
} submodules[] = {
    {"crypto", wxhw_open_crypto},
    {"http", wxhw_open_http},
    {"tokenstore", wxhw_open_tokenstore},
    {"media", wxhw_open_media},
    {"clock", wxhw_open_clock},
    {"fileio", wxhw_open_fileio},
    {"seen", wxhw_open_seen},
    {"kvshm", wxhw_open_kvshm},
    {"json", wxhw_open_json},
};

void wxhw_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                   const luaL_Reg *metamethods) {
  if (!luaL_newmetatable(L, name)) { /* already created by another require */
    lua_pop(L, 1);
    return;
  }
#if LUA_VERSION_NUM < 503
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
#endif
  if (metamethods) luaL_setfuncs(L, metamethods, 0);
  if (methods) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

static int push_error(lua_State *L, const char *kind, const char *msg) {
  lua_pushnil(L);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, ERROR_CLASS);
  return 2;
}

int wxhw_fail(lua_State *L, const char *kind, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return push_error(L, kind, msg);
}

static void format_ssl(char *msg, size_t size, const char *fmt, va_list ap) {
  size_t n;
  unsigned long code = ERR_peek_last_error();
  vsnprintf(msg, size, fmt, ap);
  n = strlen(msg);
  if (code != 0 && n + 3 < size) {
    const char *reason = ERR_reason_error_string(code);
    if (reason) snprintf(msg + n, size - n, " (%s)", reason);
  }
  ERR_clear_error();
}

int wxhw_fail_ssl(lua_State *L, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  format_ssl(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return push_error(L, "crypto", msg);
}

int wxhw_raise_ssl(lua_State *L, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  format_ssl(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return luaL_error(L, "%s", msg);
}

WXHW_EXPORT int luaopen_wxhw_core(lua_State *L);
WXHW_EXPORT int luaopen_wxhw_core(lua_State *L) {
  size_t i;
  /* The error metatable is shared with lua/wxhw/errors.lua, which adds
   * __tostring and methods to it. */
  luaL_newmetatable(L, ERROR_CLASS);
#if LUA_VERSION_NUM < 503
  lua_pushstring(L, ERROR_CLASS);
  lua_setfield(L, -2, "__name");
#endif
  lua_createtable(L, 0, (int)(sizeof submodules / sizeof submodules[0]) + 2);
  lua_insert(L, -2);
  lua_setfield(L, -2, "error_metatable");
  for (i = 0; i < sizeof submodules / sizeof submodules[0]; i++) {
    submodules[i].open(L);
    lua_setfield(L, -2, submodules[i].name);
  }
  lua_pushliteral(L, WXHW_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
