/* Placeholder until the http primitive lands; keeps the core linkable. */
#include "wxhw.h"

int wxhw_open_http(lua_State *L) {
  lua_newtable(L);
  return 1;
}
