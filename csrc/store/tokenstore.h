/* Internal header of the token-store primitive (tokenstore*.c). */
#ifndef WXHW_TOKENSTORE_H
#define WXHW_TOKENSTORE_H

#include "wxhw.h"

#pragma GCC visibility push(hidden)

/* Each adds its constructor(s) to the table at the top of the stack. */
void wxhw_tokenstore_shm_register(lua_State *L);
void wxhw_tokenstore_redis_register(lua_State *L);

#pragma GCC visibility pop

#endif
