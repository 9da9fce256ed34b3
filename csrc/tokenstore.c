/* Placeholder until the tokenstore primitive lands; keeps the core linkable. */
#include "wxhw.h"

int wxhw_open_tokenstore(lua_State *L) {
  lua_newtable(L);
  return 1;
}
