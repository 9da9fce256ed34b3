#include "wxhw.h"
int wxhw_open_crypto(lua_State *L) { lua_newtable(L); return 1; }
