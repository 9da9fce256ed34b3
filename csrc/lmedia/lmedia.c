/* wxhw.media: Lua binding of the pure C engines in csrc/media/. Packers and
 * parsers write into a reusable wxhw.media.Buffer (one C call per frame or
 * packet, no per-packet Lua strings); every call resets that buffer and
 * returns how many items it now holds.
 *
 * This file registers the families (buffer.c rtp.c video.c audio.c framing.c
 * flv.c) and holds what they share: one class helper (luv's class table) that
 * gives every class the same __gc/__close/__tostring/__index set-up, the
 * result convention and the option readers. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "lmedia.h"

/* ---- classes ------------------------------------------------------------ */
void *lm_new(lua_State *L, const lm_class *c) {
  void *self = lua_newuserdatauv(L, c->size, 0);
  memset(self, 0, c->size); /* born closed: __gc is safe from here on */
  luaL_setmetatable(L, c->name);
  return self;
}

int lm_closed(lua_State *L, const lm_class *c) { return luaL_error(L, "%s is closed", c->name); }

/* __gc and __close; upvalue 1: the class */
static int class_close(lua_State *L) {
  const lm_class *c = lua_touserdata(L, lua_upvalueindex(1));
  c->close(lm_check(L, 1, c));
  return 0;
}

/* __tostring: "<name> (<describe>)" */
static int class_tostring(lua_State *L) {
  const lm_class *c = lua_touserdata(L, lua_upvalueindex(1));
  c->describe(L, lm_check(L, 1, c));
  lua_pushfstring(L, "%s (%s)", c->name, lua_tostring(L, -1));
  return 1;
}

static void set_method(lua_State *L, const lm_class *c, const char *k, lua_CFunction f) {
  lua_pushlightuserdata(L, (void *)(uintptr_t)c);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, k);
}

static void register_class(lua_State *L, const lm_class *c) {
  wxhw_newclass(L, c->name, c->methods, c->metamethods);
  luaL_getmetatable(L, c->name);
  if (c->close) {
    set_method(L, c, "__gc", class_close);
    set_method(L, c, "__close", class_close);
  }
  if (c->describe) set_method(L, c, "__tostring", class_tostring);
  lua_pop(L, 1);
}

/* ---- results ------------------------------------------------------------ */
int lm_nomem(lua_State *L) { return luaL_error(L, "wxhw.media: out of memory"); }

int lm_items(lua_State *L, int r, lua_Integer n, const char *why) {
  if (r == WM_ENOMEM || (r < 0 && !why)) return lm_nomem(L);
  lua_pushinteger(L, n);
  if (!why) return 1;
  wxhw_fail(L, "input", "%s", why);
  lua_remove(L, -2); /* the nil before the error */
  return 2;
}

void lm_setint(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

/* ---- options ------------------------------------------------------------ */
lua_Integer lm_opt_int(lua_State *L, int t, const char *k, lua_Integer def, lua_Integer lo,
                       lua_Integer hi) {
  lua_Integer v = def;
  if (!lua_isnoneornil(L, t)) {
    if (wxhw_getfield(L, t, k) != LUA_TNIL) {
      if (!lua_isinteger(L, -1)) luaL_error(L, "option '%s' must be an integer", k);
      v = lua_tointeger(L, -1);
      if (v < lo || v > hi) {
        char range[64];
        snprintf(range, sizeof range, "%lld..%lld", (long long)lo, (long long)hi);
        luaL_error(L, "option '%s' must be in %s", k, range);
      }
    }
    lua_pop(L, 1);
  }
  return v;
}

int lm_opt_bool(lua_State *L, int t, const char *k, int def) {
  int v = def;
  if (!lua_isnoneornil(L, t)) {
    if (wxhw_getfield(L, t, k) != LUA_TNIL) v = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  return v;
}

int lm_opt_codec(lua_State *L, int t) {
  static const char *const names[] = {"h264", "h265", NULL};
  int c = WM_H264;
  if (!lua_isnoneornil(L, t)) {
    if (wxhw_getfield(L, t, "codec") != LUA_TNIL) c = luaL_checkoption(L, -1, NULL, names);
    lua_pop(L, 1);
  }
  return c;
}

const char *lm_codec_name(int codec) { return codec == WM_H265 ? "h265" : "h264"; }

void lm_check_table_or_none(lua_State *L, int i) {
  if (!lua_isnoneornil(L, i)) luaL_checktype(L, i, LUA_TTABLE);
}

uint32_t lm_random32(void) {
  uint32_t v = 0;
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) v = (uint32_t)(uintptr_t)&v ^ 0x9e3779b9u;
  return v;
}

/* ---- registration ------------------------------------------------------- */
static const lm_family *const families[] = {&lm_buffer_family, &lm_rtp_family,
                                            &lm_video_family,  &lm_audio_family,
                                            &lm_framing_family, &lm_flv_family};

int wxhw_open_media(lua_State *L) {
  size_t i;
  const lm_class *const *c;
  for (i = 0; i < sizeof families / sizeof families[0]; i++)
    for (c = families[i]->classes; *c; c++) register_class(L, *c);
  lua_newtable(L);
  for (i = 0; i < sizeof families / sizeof families[0]; i++)
    luaL_setfuncs(L, families[i]->functions, 0);
  return 1;
}
