/* FLV: the muxer (H.264/H.265 + AAC into tags for live players) and the tag
 * reader. */
#include "lmedia.h"

typedef struct {
  wm_flv f;
  int audio, video;
} flvmux;

static const lm_class flvmux_class;

static flvmux *check_flvmux(lua_State *L) { return lm_check(L, 1, &flvmux_class); }

/* flv_muxer{video="h264"|"h265"|false, audio=true, hevc="codecid12"|"enhanced"} */
static int flvmux_new(lua_State *L) {
  static const char *const flavours[] = {"codecid12", "enhanced", NULL};
  flvmux *m;
  int codec = WM_H264, video = 1, audio, flavour = WM_FLV_H265_CODECID12;
  lm_check_table_or_none(L, 1);
  if (!lua_isnoneornil(L, 1)) {
    int t = wxhw_getfield(L, 1, "video");
    if (t == LUA_TBOOLEAN) video = lua_toboolean(L, -1);
    else if (t != LUA_TNIL) {
      static const char *const names[] = {"h264", "h265", NULL};
      codec = luaL_checkoption(L, -1, NULL, names);
    }
    lua_pop(L, 1);
    if (wxhw_getfield(L, 1, "hevc") != LUA_TNIL) flavour = luaL_checkoption(L, -1, NULL, flavours);
    lua_pop(L, 1);
  }
  audio = lm_opt_bool(L, 1, "audio", 1);
  m = lm_new(L, &flvmux_class);
  wm_flv_init(&m->f, codec, flavour);
  m->audio = audio, m->video = video;
  return 1;
}

static int flv_result(lua_State *L, wm_out *o, int r, const char *why) {
  if (r == WM_EINVAL) why = "FLV: tag larger than 16 MiB";
  return lm_items(L, r, (lua_Integer)o->n, r < 0 ? why : NULL);
}

/* mux:header(buf) -> 1 (the 9-byte header + PreviousTagSize0) */
static int flvmux_header(lua_State *L) {
  flvmux *m = check_flvmux(L);
  wm_out *o = lm_output(L, 2);
  return flv_result(L, o, wm_flv_header(o, m->audio, m->video), NULL);
}

/* mux:video(annexb_au, dts_ms, cts_ms, buf) -> tags written [, err] */
static int flvmux_video(lua_State *L) {
  flvmux *m = check_flvmux(L);
  size_t len;
  const uint8_t *au = (const uint8_t *)luaL_checklstring(L, 2, &len);
  lua_Integer dts = luaL_checkinteger(L, 3), cts = luaL_optinteger(L, 4, 0);
  wm_out *o = lm_buffer(L, 5);
  const char *why = NULL;
  luaL_argcheck(L, dts >= 0 && dts <= 0x7fffffff, 3, "DTS must be 0..2^31-1 ms");
  int r;
  wm_out_reset(o);
  r = wm_flv_video(&m->f, au, len, (uint32_t)dts, (int32_t)cts, o, &why);
  return flv_result(L, o, r, why);
}

/* mux:aac(adts_frames, ts_ms, buf) -> tags written [, err] */
static int flvmux_aac(lua_State *L) {
  flvmux *m = check_flvmux(L);
  size_t len;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &len);
  lua_Integer ts = luaL_checkinteger(L, 3);
  wm_out *o = lm_buffer(L, 4);
  const char *why = NULL;
  luaL_argcheck(L, ts >= 0 && ts <= 0x7fffffff, 3, "timestamp must be 0..2^31-1 ms");
  int r;
  wm_out_reset(o);
  r = wm_flv_aac(&m->f, p, len, (uint32_t)ts, o, &why);
  return flv_result(L, o, r, why);
}

static void flvmux_describe(lua_State *L, const void *p) {
  const flvmux *m = p;
  lua_pushfstring(L, "%s%s", m->video ? lm_codec_name(m->f.video_codec) : "",
                  m->audio ? " aac" : "");
}

static void flvmux_close(void *m) { wm_flv_free(&((flvmux *)m)->f); }

/* flv_tags(s) -> { {type=, ts=, data=}, ... }, bytes_consumed | nil, err */
static int l_flv_tags(lua_State *L) {
  size_t n, pos = 0;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
  const char *why = NULL;
  wm_flv_tag t;
  int r, k = 0;
  lua_newtable(L);
  while ((r = wm_flv_read(p, n, &pos, &t, &why)) == 1) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, t.type), lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)t.ts), lua_setfield(L, -2, "ts");
    lua_pushlstring(L, (const char *)t.data, t.len), lua_setfield(L, -2, "data");
    lua_rawseti(L, -2, ++k);
  }
  if (r < 0) return wxhw_fail(L, "input", "%s", why);
  lua_pushinteger(L, (lua_Integer)pos);
  return 2;
}

static const luaL_Reg flvmux_methods[] = {
    {"header", flvmux_header}, {"video", flvmux_video}, {"aac", flvmux_aac}, {NULL, NULL}};
static const lm_class flvmux_class = {"wxhw.media.FlvMuxer", sizeof(flvmux), flvmux_close,
                                      flvmux_describe,       flvmux_methods, NULL};

static const lm_class *const classes[] = {&flvmux_class, NULL};
static const luaL_Reg functions[] = {
    {"flv_muxer", flvmux_new}, {"flv_tags", l_flv_tags}, {NULL, NULL}};
const lm_family lm_flv_family = {classes, functions};
