/* wxhw.media.Buffer: the reusable list of items (packets or frames) every
 * packer and parser writes into; one contiguous allocation kept across calls. */
#include <stdlib.h>
#include <string.h>

#include "lmedia.h"

static void *grow(void *ud, void *ptr, size_t size) {
  (void)ud;
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, size);
}

static wm_out *self(lua_State *L) { return lm_buffer(L, 1); }

static int buffer_new(lua_State *L) {
  wm_out *o = lm_new(L, &lm_buffer_class);
  o->grow = grow;
  return 1;
}

static size_t check_item(lua_State *L, wm_out *o, int arg) {
  lua_Integer i = luaL_checkinteger(L, arg);
  luaL_argcheck(L, i >= 1 && (size_t)i <= o->n, arg, "item index out of range");
  return (size_t)i - 1;
}

static int buffer_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)self(L)->n);
  return 1;
}

static int buffer_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)self(L)->len);
  return 1;
}

static int buffer_get(lua_State *L) {
  wm_out *o = self(L);
  size_t i = check_item(L, o, 2);
  lua_pushlstring(L, (const char *)o->data + o->off[i], wm_out_item_len(o, i));
  return 1;
}

static int buffer_span(lua_State *L) {
  wm_out *o = self(L);
  size_t i = check_item(L, o, 2);
  lua_pushinteger(L, (lua_Integer)o->off[i]);
  lua_pushinteger(L, (lua_Integer)wm_out_item_len(o, i));
  return 2;
}

static void set_flag(lua_State *L, const char *k, uint32_t flags, uint32_t bit) {
  lua_pushboolean(L, (flags & bit) != 0);
  lua_setfield(L, -2, k);
}

static int buffer_meta(lua_State *L) {
  wm_out *o = self(L);
  size_t i = check_item(L, o, 2);
  const wm_meta *m = &o->meta[i];
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, (lua_Integer)m->ts);
  lua_setfield(L, -2, "ts");
  lm_setint(L, "seq", m->seq);
  lm_setint(L, "type", m->type);
  lm_setint(L, "stream", m->stream);
  lm_setint(L, "flags", m->flags);
  set_flag(L, "marker", m->flags, WM_F_MARKER);
  set_flag(L, "key", m->flags, WM_F_KEY);
  set_flag(L, "gap", m->flags, WM_F_GAP);
  set_flag(L, "config", m->flags, WM_F_CONFIG);
  set_flag(L, "eos", m->flags, WM_F_EOS);
  return 1;
}

/* ts of item i without building a table (hot path) */
static int buffer_ts(lua_State *L) {
  wm_out *o = self(L);
  size_t i = check_item(L, o, 2);
  lua_pushinteger(L, (lua_Integer)o->meta[i].ts);
  lua_pushinteger(L, (lua_Integer)o->meta[i].flags);
  return 2;
}

static int buffer_data(lua_State *L) {
  wm_out *o = self(L);
  lua_pushlstring(L, o->data ? (const char *)o->data : "", o->len);
  return 1;
}

static int buffer_clear(lua_State *L) {
  wm_out_reset(self(L));
  return 0;
}

static void buffer_describe(lua_State *L, const void *p) {
  const wm_out *o = p;
  lua_pushfstring(L, "%d items, %d bytes", (int)o->n, (int)o->len);
}

static void buffer_close(void *o) { wm_out_free(o); }

static const luaL_Reg methods[] = {
    {"count", buffer_len}, {"bytes", buffer_bytes}, {"get", buffer_get},   {"span", buffer_span},
    {"meta", buffer_meta}, {"ts", buffer_ts},       {"data", buffer_data}, {"clear", buffer_clear},
    {NULL, NULL}};
static const luaL_Reg metamethods[] = {{"__len", buffer_len}, {NULL, NULL}};

const lm_class lm_buffer_class = {"wxhw.media.Buffer", sizeof(wm_out), buffer_close,
                                  buffer_describe,     methods,         metamethods};

static const lm_class *const classes[] = {&lm_buffer_class, NULL};
static const luaL_Reg functions[] = {{"buffer", buffer_new}, {NULL, NULL}};
const lm_family lm_buffer_family = {classes, functions};
