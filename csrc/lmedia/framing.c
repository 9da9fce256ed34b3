/* Device framing (docs/framing.md): the 16-byte header, whole frames, and the
 * Deframer that cuts a byte stream back into frames. */
#include <string.h>

#include "lmedia.h"

static void frame_hdr_opts(lua_State *L, wm_frame_hdr *h) {
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(h, 0, sizeof *h);
  if (lm_opt_int(L, 1, "type", -1, 0, 255) < 0) luaL_error(L, "frame: option 'type' is required");
  h->type = (uint8_t)lm_opt_int(L, 1, "type", 0, 0, 255);
  h->flags = (uint8_t)lm_opt_int(L, 1, "flags", 0, 0, 255);
  h->stream = (uint16_t)lm_opt_int(L, 1, "stream", 0, 0, 65535);
  h->seq = (uint16_t)lm_opt_int(L, 1, "seq", 0, 0, 65535);
  h->ts_ms = (uint32_t)lm_opt_int(L, 1, "ts", 0, 0, 4294967295LL);
}

/* frame_header{type=, flags=, stream=, seq=, ts=}, payload_len -> 16 bytes */
static int l_frame_header(lua_State *L) {
  wm_frame_hdr h;
  uint8_t p[WM_FRAME_HDR];
  lua_Integer len;
  frame_hdr_opts(L, &h);
  len = luaL_checkinteger(L, 2);
  luaL_argcheck(L, len >= 0 && len <= 4294967295LL, 2, "length out of range");
  h.len = (uint32_t)len;
  wm_frame_put_header(p, &h);
  lua_pushlstring(L, (const char *)p, sizeof p);
  return 1;
}

/* frame{...}, payload -> header .. payload */
static int l_frame(lua_State *L) {
  wm_frame_hdr h;
  size_t len;
  const char *payload = luaL_checklstring(L, 2, &len);
  uint8_t *w;
  frame_hdr_opts(L, &h);
  luaL_argcheck(L, len <= 4294967295u, 2, "payload too large");
  h.len = (uint32_t)len;
  w = lua_newuserdatauv(L, WM_FRAME_HDR + len, 0); /* scratch */
  wm_frame_put_header(w, &h);
  memcpy(w + WM_FRAME_HDR, payload, len);
  lua_pushlstring(L, (const char *)w, WM_FRAME_HDR + len);
  return 1;
}

/* ---- Deframer ----------------------------------------------------------- */
static const lm_class deframer_class;

static wm_deframer *check_deframer(lua_State *L) { return lm_check(L, 1, &deframer_class); }

static int deframer_new(lua_State *L) {
  lua_Integer max;
  lm_check_table_or_none(L, 1);
  max = lm_opt_int(L, 1, "max_len", 4 << 20, 0, 0x7fffffff);
  wm_deframer_init(lm_new(L, &deframer_class), (uint32_t)max);
  return 1;
}

/* d:push(bytes, buf) -> frames written into buf [, err: stream unusable] */
static int deframer_push(lua_State *L) {
  wm_deframer *d = check_deframer(L);
  size_t len;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &len);
  wm_out *o = lm_output(L, 3);
  int n = wm_deframer_push(d, p, len, o);
  return lm_items(L, n, (lua_Integer)o->n, n == WM_EBAD ? d->why : NULL);
}

/* bytes buffered towards the next frame (0 on a frame boundary) */
static int deframer_pending(lua_State *L) {
  wm_deframer *d = check_deframer(L);
  lua_pushinteger(L, (lua_Integer)(d->hfill + d->body.len));
  return 1;
}

static void deframer_describe(lua_State *L, const void *p) {
  lua_pushstring(L, ((const wm_deframer *)p)->failed ? "failed" : "ok");
}

static void deframer_close(void *d) { wm_deframer_free(d); }

static const luaL_Reg deframer_methods[] = {
    {"push", deframer_push}, {"pending", deframer_pending}, {NULL, NULL}};
static const lm_class deframer_class = {"wxhw.media.Deframer", sizeof(wm_deframer), deframer_close,
                                        deframer_describe,     deframer_methods,    NULL};

/* ---- family ------------------------------------------------------------- */
static const lm_class *const classes[] = {&deframer_class, NULL};
static const luaL_Reg functions[] = {{"frame", l_frame},
                                     {"frame_header", l_frame_header},
                                     {"deframer", deframer_new},
                                     {NULL, NULL}};
const lm_family lm_framing_family = {classes, functions};
