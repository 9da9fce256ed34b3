/* wxhw.core: one shared object, one exported entry point. Each concern lives in
 * its own file and contributes one submodule table. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "wxhw.h"

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
    {"proc", wxhw_open_proc},
    {"seen", wxhw_open_seen},
    {"kvshm", wxhw_open_kvshm},
    {"redis", wxhw_open_redis},
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

/* Pushes field `k` of the error at index 1 for its tostring. Whole numbers
 * print without ".0": JSON hands Lua 5.4 floats such as errcode 40125.0. */
static void push_part(lua_State *L, const char *k) {
  char num[32];
  lua_getfield(L, 1, k);
  switch (lua_type(L, -1)) {
  case LUA_TSTRING: return;
  case LUA_TNUMBER: {
    lua_Number n = lua_tonumber(L, -1);
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, -1)) snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, -1));
    else
#endif
    if (n == floor(n) && fabs(n) < 9.2e18) snprintf(num, sizeof num, "%.0f", n);
    else snprintf(num, sizeof num, "%.14g", n);
    lua_pop(L, 1);
    lua_pushstring(L, num);
    return;
  }
  case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false"); break;
  default: lua_pushstring(L, luaL_typename(L, -1)); break;
  }
  lua_remove(L, -2);
}

/* wxhw.Error's __tostring lives here, so an error prints whole whichever
 * module made it and whether or not wxhw.errors was loaded:
 * "wxhw <kind> error: <message> (errcode=…, errmsg=…, http_status=…, request_id=…, retryable)". */
static int error_tostring(lua_State *L) {
  static const char *const fields[] = {"errcode", "errmsg", "http_status", "request_id"};
  int base, nparts = 0;
  size_t i;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkstack(L, 24, "error tostring");
  base = lua_gettop(L);
  lua_pushliteral(L, "wxhw ");
  push_part(L, "kind");
  lua_pushliteral(L, " error: ");
  push_part(L, "message");
  for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    lua_getfield(L, 1, fields[i]);
    if (!lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushstring(L, nparts++ ? ", " : " (");
      lua_pushfstring(L, "%s=", fields[i]);
      push_part(L, fields[i]);
    } else lua_pop(L, 1);
  }
  lua_getfield(L, 1, "retryable");
  if (lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    lua_pushstring(L, nparts++ ? ", retryable" : " (retryable");
  } else lua_pop(L, 1);
  if (nparts) lua_pushliteral(L, ")");
  lua_concat(L, lua_gettop(L) - base);
  return 1;
}

WXHW_EXPORT int luaopen_wxhw_core(lua_State *L);
WXHW_EXPORT int luaopen_wxhw_core(lua_State *L) {
  size_t i;
  /* The error metatable is shared with lua/wxhw/errors.lua, which adds
   * constructors and methods to it. */
  luaL_newmetatable(L, ERROR_CLASS);
#if LUA_VERSION_NUM < 503
  lua_pushstring(L, ERROR_CLASS);
  lua_setfield(L, -2, "__name");
#endif
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
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
