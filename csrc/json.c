/* wxhw.core.json: the one JSON job lua-cjson 2.1 cannot do, keeping 64-bit
 * integers exact (wxhw.json wraps cjson around it). */
#include "json_ints.h"
#include "wxhw.h"

/* quote_big_integers(text) -> text with every integer literal beyond 2^53
 * outside strings in double quotes; the same string when there is none, or
 * when a string is unterminated (the decoder then refuses the text). */
static int json_quote_big_integers(lua_State *L) {
  size_t n, pos = 0, start, len;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  int found = wxhw_json_next_big_int(s, n, 0, &start, &len);
  if (found <= 0) {
    lua_settop(L, 1);
    return 1;
  }
  luaL_buffinit(L, &b);
  while (found > 0) {
    luaL_addlstring(&b, s + pos, start - pos);
    luaL_addchar(&b, '"');
    luaL_addlstring(&b, s + start, len);
    luaL_addchar(&b, '"');
    pos = start + len;
    found = wxhw_json_next_big_int(s, n, pos, &start, &len);
  }
  if (found < 0) { /* drop the partial buffer */
    lua_settop(L, 1);
    return 1;
  }
  luaL_addlstring(&b, s + pos, n - pos);
  luaL_pushresult(&b);
  return 1;
}

int wxhw_open_json(lua_State *L) {
  static const luaL_Reg funcs[] = {{"quote_big_integers", json_quote_big_integers}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
