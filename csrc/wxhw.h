/* Internal header of the wxhw C core. Everything here is hidden: the only
 * exported symbol of wxhw/core.so is luaopen_wxhw_core (core.c). */
#ifndef WXHW_H
#define WXHW_H

#include <stddef.h>
#include "compat.h"

#pragma GCC visibility push(hidden)

#define WXHW_EXPORT __attribute__((visibility("default")))

/* = the rockspec's version, wxhw._VERSION and `wxhw --version` (spec/cli_spec.lua) */
#define WXHW_VERSION "0.2.0"

/* Each submodule pushes its table onto the stack and returns 1. */
int wxhw_open_crypto(lua_State *L);
int wxhw_open_http(lua_State *L);
int wxhw_open_tokenstore(lua_State *L);
int wxhw_open_media(lua_State *L);
int wxhw_open_clock(lua_State *L);
int wxhw_open_fileio(lua_State *L);
int wxhw_open_proc(lua_State *L);
int wxhw_open_seen(lua_State *L);
int wxhw_open_json(lua_State *L);
int wxhw_open_kvshm(lua_State *L);
int wxhw_open_redis(lua_State *L);

/* CLOCK_MONOTONIC in seconds (csrc/clock.c): system-wide on Linux, so
 * comparable across the processes of one host (lease deadlines, timers). */
double wxhw_monotonic(void);

/* Creates (or reuses) the metatable `name` with `methods` as __index and the
 * metamethods set; leaves nothing on the stack. */
void wxhw_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                   const luaL_Reg *metamethods);

/* Pushes nil and an error table {kind=, message=} carrying the wxhw.Error
 * metatable; returns 2 so a C function can `return wxhw_fail(...)`. */
int wxhw_fail(lua_State *L, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like wxhw_fail but appends the first OpenSSL error reason (if any) and
 * always leaves the OpenSSL error queue empty. */
int wxhw_fail_ssl(lua_State *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Raises a Lua error (programmer misuse) after clearing the OpenSSL queue. */
int wxhw_raise_ssl(lua_State *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#pragma GCC visibility pop

#endif
