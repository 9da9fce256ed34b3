/* Placeholder until the media binding lands; keeps the core linkable. */
#include "wxhw.h"

int wxhw_open_media(lua_State *L) {
  lua_newtable(L);
  return 1;
}
