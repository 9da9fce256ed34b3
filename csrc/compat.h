/* Lua 5.1 / LuaJIT <-> 5.4 C-API shims. The C core is written against the
 * 5.4 API; on 5.1 (LuaJIT, OpenResty) the missing pieces are mapped here.
 * Shims are renamed with macros so they never clash with a declaration that
 * a particular LuaJIT build happens to ship. */
#ifndef WXHW_COMPAT_H
#define WXHW_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if LUA_VERSION_NUM < 502

#ifndef LUA_OK
#define LUA_OK 0
#endif

#define lua_rawlen(L, i) lua_objlen((L), (i))
#define luaL_len(L, i) ((lua_Integer)lua_objlen((L), (i)))
#define lua_newuserdatauv(L, sz, nuv) lua_newuserdata((L), (sz))
#ifndef luaL_newlib
#define luaL_newlibtable(L, l) lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))
#endif
#define luaL_pushfail(L) lua_pushnil(L)

static inline int wxhw_compat_absindex(lua_State *L, int i) {
  return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}
#define lua_absindex wxhw_compat_absindex

static inline void wxhw_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#define luaL_setfuncs wxhw_compat_setfuncs

static inline void *wxhw_compat_testudata(lua_State *L, int ud, const char *tname) {
  void *p = lua_touserdata(L, ud);
  if (p == NULL || !lua_getmetatable(L, ud)) return NULL;
  luaL_getmetatable(L, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}
#define luaL_testudata wxhw_compat_testudata

static inline void wxhw_compat_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}
#define luaL_setmetatable wxhw_compat_setmetatable

static inline int wxhw_compat_isinteger(lua_State *L, int i) {
  if (lua_type(L, i) != LUA_TNUMBER) return 0;
  lua_Number n = lua_tonumber(L, i);
  return n == (lua_Number)(lua_Integer)n;
}
#define lua_isinteger wxhw_compat_isinteger

/* luaL_Buffer in 5.1 has no sized variant: a scratch userdata stands in. As
 * in 5.4, nothing may be pushed between init and pushresultsize. */
static inline char *wxhw_compat_buffinitsize(lua_State *L, luaL_Buffer *B, size_t sz) {
  B->L = L;
  return (char *)lua_newuserdata(L, sz ? sz : 1);
}
#define luaL_buffinitsize wxhw_compat_buffinitsize
static inline void wxhw_compat_pushresultsize(luaL_Buffer *B, size_t sz) {
  lua_State *L = B->L;
  lua_pushlstring(L, (const char *)lua_touserdata(L, -1), sz);
  lua_remove(L, -2);
}
#define luaL_pushresultsize wxhw_compat_pushresultsize

/* 5.1 lua_getfield/lua_rawgeti return void; 5.4 returns the type. */
static inline int wxhw_compat_getfield(lua_State *L, int i, const char *k) {
  lua_getfield(L, i, k);
  return lua_type(L, -1);
}
#define wxhw_getfield wxhw_compat_getfield
static inline int wxhw_compat_rawgeti(lua_State *L, int i, lua_Integer n) {
  lua_rawgeti(L, i, (int)n);
  return lua_type(L, -1);
}
#define wxhw_rawgeti wxhw_compat_rawgeti

#else

#define wxhw_getfield lua_getfield
#define wxhw_rawgeti lua_rawgeti

#endif /* LUA_VERSION_NUM < 502 */

#endif
