/* Video: Annex-B scanning, the H.264/H.265 RTP Packetizer and Depacketizer,
 * and the parameter-set Reorderer ("prepare for WeChat"). */
#include <string.h>

#include "lmedia.h"

/* ---- Annex-B ------------------------------------------------------------ */
/* nal_spans(s) -> { off1, len1, off2, len2, ... } (1-based offsets) */
static int l_nal_spans(lua_State *L) {
  size_t len, pos = 0;
  const uint8_t *s = (const uint8_t *)luaL_checklstring(L, 1, &len);
  wm_nal nal;
  lua_Integer k = 0;
  lua_newtable(L);
  while (wm_annexb_next(s, len, &pos, &nal)) {
    lua_pushinteger(L, (lua_Integer)(nal.p - s) + 1);
    lua_rawseti(L, -2, (int)++k);
    lua_pushinteger(L, (lua_Integer)nal.len);
    lua_rawseti(L, -2, (int)++k);
  }
  return 1;
}

/* nal_count(s) -> number of NALs (scanner speed in benchmarks) */
static int l_nal_count(lua_State *L) {
  size_t len, pos = 0;
  const uint8_t *s = (const uint8_t *)luaL_checklstring(L, 1, &len);
  wm_nal nal;
  lua_Integer k = 0;
  while (wm_annexb_next(s, len, &pos, &nal)) k++;
  lua_pushinteger(L, k);
  return 1;
}

/* annexb_to_avcc(s) -> NALs with 4-byte big-endian length prefixes */
static int l_annexb_to_avcc(lua_State *L) {
  size_t len;
  const uint8_t *s = (const uint8_t *)luaL_checklstring(L, 1, &len);
  wm_buf b = {0};
  if (wm_annexb_to_avcc(s, len, &b) < 0) {
    wm_buf_free(&b);
    return lm_nomem(L);
  }
  lua_pushlstring(L, b.p ? (const char *)b.p : "", b.len);
  wm_buf_free(&b);
  return 1;
}

/* ---- Packetizer --------------------------------------------------------- */
static const lm_class packetizer_class;

static wm_vpack *check_pk(lua_State *L) { return lm_check(L, 1, &packetizer_class); }

static int packetizer_new(lua_State *L) {
  wm_vpack *pk;
  lm_check_table_or_none(L, 1);
  pk = lm_new(L, &packetizer_class);
  pk->codec = lm_opt_codec(L, 1);
  pk->mtu = (size_t)lm_opt_int(L, 1, "mtu", 1200, 17, 65535);
  pk->pt = (uint8_t)lm_opt_int(L, 1, "pt", 96, 0, 127);
  pk->ssrc = (uint32_t)lm_opt_int(L, 1, "ssrc", lm_random32(), 0, 4294967295LL);
  pk->seq = (uint16_t)lm_opt_int(L, 1, "seq", lm_random32() & 0xffff, 0, 65535);
  pk->aggregate = lm_opt_bool(L, 1, "aggregate", 1);
  return 1;
}

/* pk:pack(au, ts, buf) -> packets written into buf (buf is reset first) */
static int packetizer_pack(lua_State *L) {
  wm_vpack *pk = check_pk(L);
  size_t len;
  const uint8_t *au = (const uint8_t *)luaL_checklstring(L, 2, &len);
  uint32_t ts = (uint32_t)luaL_checkinteger(L, 3);
  int n = wm_vpack_au(pk, au, len, ts, lm_output(L, 4));
  return lm_items(L, n, n, NULL);
}

static int packetizer_state(lua_State *L) {
  wm_vpack *pk = check_pk(L);
  lua_pushinteger(L, pk->seq);
  lua_pushinteger(L, (lua_Integer)pk->ssrc);
  return 2;
}

static void packetizer_describe(lua_State *L, const void *p) {
  const wm_vpack *pk = p;
  lua_pushfstring(L, "%s, mtu %d, pt %d", lm_codec_name(pk->codec), (int)pk->mtu, (int)pk->pt);
}

static const luaL_Reg packetizer_methods[] = {
    {"pack", packetizer_pack}, {"state", packetizer_state}, {NULL, NULL}};
static const lm_class packetizer_class = {"wxhw.media.Packetizer", sizeof(wm_vpack), NULL,
                                          packetizer_describe, packetizer_methods, NULL};

/* ---- Depacketizer ------------------------------------------------------- */
static const lm_class depacketizer_class;

static wm_vdepack *check_depack(lua_State *L) { return lm_check(L, 1, &depacketizer_class); }

static int depacketizer_new(lua_State *L) {
  int codec, wait;
  lm_check_table_or_none(L, 1);
  codec = lm_opt_codec(L, 1);
  wait = lm_opt_bool(L, 1, "wait_keyframe", 1);
  wm_vdepack_init(lm_new(L, &depacketizer_class), codec, wait);
  return 1;
}

/* dp:push(packet, buf) -> frames written into buf [, err when rejected] */
static int depacketizer_push(lua_State *L) {
  wm_vdepack *d = check_depack(L);
  size_t len;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &len);
  int n = wm_vdepack_push(d, p, len, lm_output(L, 3));
  return lm_items(L, n, n, d->why);
}

static int depacketizer_flush(lua_State *L) {
  wm_vdepack *d = check_depack(L);
  int n = wm_vdepack_flush(d, lm_output(L, 2));
  return lm_items(L, n, n, NULL);
}

static int depacketizer_stats(lua_State *L) {
  wm_vdepack *d = check_depack(L);
  lua_createtable(L, 0, 5);
  lm_setint(L, "frames", d->frames);
  lm_setint(L, "dropped_frames", d->dropped_frames);
  lm_setint(L, "malformed", d->malformed);
  lm_setint(L, "gaps", d->gaps);
  lua_pushboolean(L, d->wait_key);
  lua_setfield(L, -2, "waiting_keyframe");
  return 1;
}

static void depacketizer_describe(lua_State *L, const void *p) {
  const wm_vdepack *d = p;
  lua_pushfstring(L, "%s, %d frames", lm_codec_name(d->codec), (int)d->frames);
}

static void depacketizer_close(void *d) { wm_vdepack_free(d); }

static const luaL_Reg depacketizer_methods[] = {{"push", depacketizer_push},
                                                {"flush", depacketizer_flush},
                                                {"stats", depacketizer_stats},
                                                {NULL, NULL}};
static const lm_class depacketizer_class = {"wxhw.media.Depacketizer", sizeof(wm_vdepack),
                                            depacketizer_close,        depacketizer_describe,
                                            depacketizer_methods,      NULL};

/* ---- parameter-set reorderer ("prepare for WeChat") ---------------------- */
static const lm_class reorder_class;

static int reorder_new(lua_State *L) {
  int codec;
  lm_check_table_or_none(L, 1);
  codec = lm_opt_codec(L, 1);
  wm_reorder_init(lm_new(L, &reorder_class), codec);
  return 1;
}

/* r:push(au, ts, buf) -> 0 (dropped) or 1 (the access unit to send) */
static int reorder_push(lua_State *L) {
  wm_reorder *r = lm_check(L, 1, &reorder_class);
  size_t len;
  const uint8_t *au = (const uint8_t *)luaL_checklstring(L, 2, &len);
  lua_Integer ts = luaL_optinteger(L, 3, 0);
  int n = wm_reorder_push(r, au, len, ts, lm_output(L, 4));
  return lm_items(L, n, n, NULL);
}

static void reorder_describe(lua_State *L, const void *p) {
  lua_pushstring(L, lm_codec_name(((const wm_reorder *)p)->codec));
}

static void reorder_close(void *r) { wm_reorder_free(r); }

static const luaL_Reg reorder_methods[] = {{"push", reorder_push}, {NULL, NULL}};
static const lm_class reorder_class = {"wxhw.media.Reorderer", sizeof(wm_reorder), reorder_close,
                                       reorder_describe,       reorder_methods,     NULL};

/* ---- family ------------------------------------------------------------- */
static const lm_class *const classes[] = {&packetizer_class, &depacketizer_class, &reorder_class,
                                          NULL};
static const luaL_Reg functions[] = {{"nal_spans", l_nal_spans},
                                     {"nal_count", l_nal_count},
                                     {"annexb_to_avcc", l_annexb_to_avcc},
                                     {"packetizer", packetizer_new},
                                     {"depacketizer", depacketizer_new},
                                     {"reorderer", reorder_new},
                                     {NULL, NULL}};
const lm_family lm_video_family = {classes, functions};
