/* wxhw.core.json: the one JSON job lua-cjson 2.1 cannot do, keeping 64-bit
 * integers exact (wxhw.json wraps cjson around it). */
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "json_flat.h"
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

/* decode_flat(text) -> table, or false when the text is not a flat object
 * in strict JSON (json_flat.h): the caller then decodes it with cjson after
 * quote_big_integers, and gets what that path has always given: numbers as
 * doubles, integers beyond 2^53 as their digits, null as cjson.null (a NULL
 * light userdata), the last of repeated keys. */
static int json_decode_flat(lua_State *L) {
  size_t n, count, i;
  const char *s = luaL_checklstring(L, 1, &n);
  struct wxhw_flat_member m[WXHW_FLAT_MAX];
  const char *point = localeconv()->decimal_point;
  if (!wxhw_json_flat(s, n, point && point[0] ? point[0] : '.', m, &count)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_createtable(L, 0, (int)count);
  for (i = 0; i < count; i++) {
    const char *v = s + m[i].off;
    lua_pushlstring(L, s + m[i].key_off, m[i].key_len);
    switch (m[i].kind) {
    case WXHW_FLAT_STRING:
    case WXHW_FLAT_BIG_INT:
      lua_pushlstring(L, v, m[i].len);
      break;
    case WXHW_FLAT_ESCAPED: {
      char small[512];
      char *out = m[i].len <= sizeof small ? small : (char *)lua_newuserdata(L, m[i].len);
      size_t len = wxhw_json_flat_unescape(v, m[i].len, out);
      lua_pushlstring(L, out, len);
      if (out != small) lua_remove(L, -2); /* the scratch userdata */
      break;
    }
    case WXHW_FLAT_NUMBER: {
      char num[64];
      if (m[i].len >= sizeof num) { /* a 64-digit literal: leave it to cjson */
        lua_pushboolean(L, 0);
        return 1;
      }
      memcpy(num, v, m[i].len);
      num[m[i].len] = '\0';
      lua_pushnumber(L, (lua_Number)strtod(num, NULL));
      break;
    }
    case WXHW_FLAT_TRUE: lua_pushboolean(L, 1); break;
    case WXHW_FLAT_FALSE: lua_pushboolean(L, 0); break;
    default: lua_pushlightuserdata(L, NULL); break; /* cjson.null */
    }
    lua_rawset(L, -3);
  }
  return 1;
}

int wxhw_open_json(lua_State *L) {
  static const luaL_Reg funcs[] = {{"quote_big_integers", json_quote_big_integers},
                                   {"decode_flat", json_decode_flat},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
