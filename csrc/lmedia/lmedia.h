/* Internal header of the wxhw.media binding (csrc/lmedia/): the class helper
 * every family file uses, and the shared option readers. */
#ifndef WXHW_LMEDIA_H
#define WXHW_LMEDIA_H

#include <stdint.h>

#include "../media/media.h"
#include "../wxhw.h"

#pragma GCC visibility push(hidden)

/* One Lua class. lm_new gives a zeroed userdata, and zeroed memory is the
 * closed state: `close` must accept it and be idempotent, so __gc after
 * __close, a second __close, or a constructor that raises after lm_new are
 * all safe. close == NULL: nothing to free (no __gc/__close). describe pushes
 * the text inside the parentheses of "<name> (...)"; NULL: Lua's default. */
typedef struct lm_class {
  const char *name;
  size_t size;
  void (*close)(void *self);
  void (*describe)(lua_State *L, const void *self);
  const luaL_Reg *methods;     /* the __index table */
  const luaL_Reg *metamethods; /* more metamethods (Buffer's __len), or NULL */
} lm_class;

/* What a family file contributes: its classes (NULL-terminated) and the
 * functions it adds to wxhw.core.media. */
typedef struct lm_family {
  const lm_class *const *classes;
  const luaL_Reg *functions;
} lm_family;

extern const lm_family lm_buffer_family, lm_rtp_family, lm_video_family, lm_audio_family,
    lm_framing_family, lm_flv_family;
extern const lm_class lm_buffer_class;

void *lm_new(lua_State *L, const lm_class *c);
static inline void *lm_check(lua_State *L, int i, const lm_class *c) {
  return luaL_checkudata(L, i, c->name);
}
/* Raises "<name> is closed". */
int lm_closed(lua_State *L, const lm_class *c);
int lm_nomem(lua_State *L);

/* A packer's or parser's result from the engine's return r: out of memory (or
 * a failure without a reason) raises; else n (the items written) and, when
 * why is set, the input error after it. */
int lm_items(lua_State *L, int r, lua_Integer n, const char *why);

static inline wm_out *lm_buffer(lua_State *L, int i) { return lm_check(L, i, &lm_buffer_class); }
/* The Buffer argument at i, emptied for the call to write into. */
static inline wm_out *lm_output(lua_State *L, int i) {
  wm_out *o = lm_buffer(L, i);
  wm_out_reset(o);
  return o;
}

/* Sets t[k] = v on the table at the top of the stack. */
void lm_setint(lua_State *L, const char *k, uint64_t v);

/* Options from the table at index t (absent or nil: the default). */
lua_Integer lm_opt_int(lua_State *L, int t, const char *k, lua_Integer def, lua_Integer lo,
                       lua_Integer hi);
int lm_opt_bool(lua_State *L, int t, const char *k, int def);
int lm_opt_codec(lua_State *L, int t); /* codec = "h264" (default) | "h265" */
void lm_check_table_or_none(lua_State *L, int i);
uint32_t lm_random32(void);
/* "h264" or "h265" */
const char *lm_codec_name(int codec);

#pragma GCC visibility pop

#endif
