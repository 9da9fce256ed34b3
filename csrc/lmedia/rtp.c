/* RTP, codec-neutral: the header (parse/build), the reordering Receiver and
 * the 16/32-bit counter Unwrapper. Audio and video both sit on these, so they
 * are a family of their own rather than part of video.c. */
#include <string.h>

#include "lmedia.h"

/* ---- RTP header --------------------------------------------------------- */
static int l_rtp_parse(lua_State *L) {
  size_t n, i;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
  const char *why = NULL;
  wm_rtp h;
  if (wm_rtp_parse(p, n, &h, &why) != WM_OK) return wxhw_fail(L, "input", "%s", why);
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, h.pt), lua_setfield(L, -2, "pt");
  lua_pushboolean(L, h.marker), lua_setfield(L, -2, "marker");
  lua_pushinteger(L, h.seq), lua_setfield(L, -2, "seq");
  lua_pushinteger(L, (lua_Integer)h.ts), lua_setfield(L, -2, "ts");
  lua_pushinteger(L, (lua_Integer)h.ssrc), lua_setfield(L, -2, "ssrc");
  lua_pushboolean(L, h.padding), lua_setfield(L, -2, "padding");
  lua_createtable(L, h.cc, 0);
  for (i = 0; i < h.cc; i++) {
    lua_pushinteger(L, (lua_Integer)h.csrc[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "csrc");
  if (h.extension) {
    lua_pushinteger(L, h.ext_profile), lua_setfield(L, -2, "ext_profile");
    lua_pushlstring(L, (const char *)h.ext, h.ext_len), lua_setfield(L, -2, "ext");
  }
  lua_pushinteger(L, (lua_Integer)h.header_len), lua_setfield(L, -2, "header_len");
  lua_pushlstring(L, (const char *)h.payload, h.payload_len), lua_setfield(L, -2, "payload");
  return 1;
}

/* rtp_build{pt=, seq=, ts=, ssrc=, marker=, csrc={...}, ext_profile=, ext=, padding=}, payload */
static int l_rtp_build(lua_State *L) {
  wm_rtp h;
  size_t plen, elen = 0, hl;
  const char *payload;
  lua_Integer pad;
  char *w;
  int i, cc;
  luaL_checktype(L, 1, LUA_TTABLE);
  payload = luaL_optlstring(L, 2, "", &plen);
  memset(&h, 0, sizeof h);
  h.pt = (uint8_t)lm_opt_int(L, 1, "pt", 96, 0, 127);
  h.seq = (uint16_t)lm_opt_int(L, 1, "seq", 0, 0, 65535);
  h.ts = (uint32_t)lm_opt_int(L, 1, "ts", 0, 0, 4294967295LL);
  h.ssrc = (uint32_t)lm_opt_int(L, 1, "ssrc", 0, 0, 4294967295LL);
  h.marker = (uint8_t)lm_opt_bool(L, 1, "marker", 0);
  pad = lm_opt_int(L, 1, "padding", 0, 0, 255);
  if (wxhw_getfield(L, 1, "csrc") == LUA_TTABLE) {
    cc = (int)lua_rawlen(L, -1);
    luaL_argcheck(L, cc <= 15, 1, "at most 15 CSRCs");
    for (i = 0; i < cc; i++) {
      wxhw_rawgeti(L, -1, i + 1);
      h.csrc[i] = (uint32_t)luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    }
    h.cc = (uint8_t)cc;
  }
  lua_pop(L, 1);
  if (wxhw_getfield(L, 1, "ext") == LUA_TSTRING) {
    h.ext = (const uint8_t *)lua_tolstring(L, -1, &elen);
    luaL_argcheck(L, elen <= 65535 * 4, 1, "extension too long");
    h.ext_len = elen;
    h.ext_profile = (uint16_t)lm_opt_int(L, 1, "ext_profile", 0xBEDE, 0, 65535);
  }
  hl = 12 + 4 * h.cc + (h.ext ? 4 + (elen + 3) / 4 * 4 : 0);
  w = lua_newuserdatauv(L, hl + plen + (size_t)pad, 0); /* scratch */
  wm_rtp_write((uint8_t *)w, &h);
  if (pad) w[0] |= 0x20;
  memcpy(w + hl, payload, plen);
  if (pad) {
    memset(w + hl + plen, 0, (size_t)pad);
    w[hl + plen + (size_t)pad - 1] = (char)pad;
  }
  lua_pushlstring(L, w, hl + plen + (size_t)pad);
  return 1;
}

/* ---- Receiver ----------------------------------------------------------- */
static const lm_class receiver_class;

static wm_rtp_rx *check_rx(lua_State *L) { return lm_check(L, 1, &receiver_class); }

static int receiver_new(lua_State *L) {
  size_t window, maxp;
  lm_check_table_or_none(L, 1);
  window = (size_t)lm_opt_int(L, 1, "window", 64, 1, 4096);
  maxp = (size_t)lm_opt_int(L, 1, "max_packet", 1500, 12, 65536);
  if (wm_rtp_rx_init(lm_new(L, &receiver_class), window, maxp) != WM_OK) return lm_nomem(L);
  return 1;
}

/* rx:push(packet, buf) -> packets now deliverable in order [, err] */
static int receiver_push(lua_State *L) {
  wm_rtp_rx *rx = check_rx(L);
  size_t len;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &len);
  wm_out *o = lm_buffer(L, 3);
  const char *why = NULL;
  int n;
  if (!rx->slots) return lm_closed(L, &receiver_class);
  wm_out_reset(o);
  n = wm_rtp_rx_push(rx, p, len, o, &why);
  return lm_items(L, n, n < 0 ? 0 : n, why);
}

static int receiver_flush(lua_State *L) {
  wm_rtp_rx *rx = check_rx(L);
  wm_out *o = lm_buffer(L, 2);
  int n;
  if (!rx->slots) return lm_closed(L, &receiver_class);
  wm_out_reset(o);
  n = wm_rtp_rx_pop(rx, o, 1);
  return lm_items(L, n, n, NULL);
}

static int receiver_stats(lua_State *L) {
  wm_rtp_rx *rx = check_rx(L);
  lua_createtable(L, 0, 7);
  lm_setint(L, "received", rx->received);
  lm_setint(L, "delivered", rx->delivered);
  lm_setint(L, "lost", rx->lost);
  lm_setint(L, "duplicates", rx->duplicates);
  lm_setint(L, "late", rx->late);
  lm_setint(L, "reordered", rx->reordered);
  lm_setint(L, "malformed", rx->malformed);
  return 1;
}

static void receiver_describe(lua_State *L, const void *p) {
  lua_pushfstring(L, "window %d", (int)((const wm_rtp_rx *)p)->window);
}

static void receiver_close(void *rx) { wm_rtp_rx_free(rx); }

static const luaL_Reg receiver_methods[] = {
    {"push", receiver_push}, {"flush", receiver_flush}, {"stats", receiver_stats}, {NULL, NULL}};
static const lm_class receiver_class = {"wxhw.media.Receiver", sizeof(wm_rtp_rx), receiver_close,
                                        receiver_describe,     receiver_methods,   NULL};

/* ---- counter unwrap ----------------------------------------------------- */
typedef struct {
  wm_unwrap u;
  int bits;
} unwrapper;

static const lm_class unwrap_class;

/* unwrapper(16|32) -> u; u:push(v) -> the 64-bit extended value */
static int unwrap_new(lua_State *L) {
  lua_Integer bits = luaL_optinteger(L, 1, 32);
  luaL_argcheck(L, bits == 16 || bits == 32, 1, "bits must be 16 or 32");
  ((unwrapper *)lm_new(L, &unwrap_class))->bits = (int)bits;
  return 1;
}

static int unwrap_push(lua_State *L) {
  unwrapper *w = lm_check(L, 1, &unwrap_class);
  lua_Integer v = luaL_checkinteger(L, 2);
  luaL_argcheck(L, v >= 0 && v < (w->bits == 16 ? 65536 : 4294967296LL), 2, "value out of range");
  lua_pushinteger(L, (lua_Integer)(w->bits == 16 ? wm_unwrap16(&w->u, (uint16_t)v)
                                                 : wm_unwrap32(&w->u, (uint32_t)v)));
  return 1;
}

static const luaL_Reg unwrap_methods[] = {{"push", unwrap_push}, {NULL, NULL}};
static const lm_class unwrap_class = {"wxhw.media.Unwrapper", sizeof(unwrapper), NULL, NULL,
                                      unwrap_methods,         NULL};

/* ---- family ------------------------------------------------------------- */
static const lm_class *const classes[] = {&receiver_class, &unwrap_class, NULL};
static const luaL_Reg functions[] = {{"rtp_parse", l_rtp_parse},   {"rtp_build", l_rtp_build},
                                     {"receiver", receiver_new},   {"unwrapper", unwrap_new},
                                     {NULL, NULL}};
const lm_family lm_rtp_family = {classes, functions};
