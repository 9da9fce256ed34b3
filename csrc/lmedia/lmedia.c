/* wxhw.media: Lua binding of the pure C engines in csrc/media/. Packers and
 * parsers write into a reusable wxhw.media.Buffer (one C call per frame or
 * packet, no per-packet Lua strings); every call resets that buffer and
 * returns how many items it now holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../media/media.h"
#include "../wxhw.h"

#define BUFFER "wxhw.media.Buffer"
#define PACKETIZER "wxhw.media.Packetizer"
#define DEPACKETIZER "wxhw.media.Depacketizer"
#define RECEIVER "wxhw.media.Receiver"
#define DEFRAMER "wxhw.media.Deframer"
#define RESAMPLER "wxhw.media.Resampler"
#define FRAMER "wxhw.media.Framer"
#define FLVMUX "wxhw.media.FlvMuxer"
#define REORDER "wxhw.media.Reorderer"
#define APACK "wxhw.media.AudioPacketizer"
#define UNWRAP "wxhw.media.Unwrapper"

static void *grow(void *ud, void *ptr, size_t size) {
  (void)ud;
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, size);
}

/* ---- options ------------------------------------------------------------ */
static lua_Integer opt_int(lua_State *L, int t, const char *k, lua_Integer def, lua_Integer lo,
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

static int opt_bool(lua_State *L, int t, const char *k, int def) {
  int v = def;
  if (!lua_isnoneornil(L, t)) {
    if (wxhw_getfield(L, t, k) != LUA_TNIL) v = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  return v;
}

static int opt_codec(lua_State *L, int t) {
  static const char *const names[] = {"h264", "h265", NULL};
  int c = WM_H264;
  if (!lua_isnoneornil(L, t)) {
    if (wxhw_getfield(L, t, "codec") != LUA_TNIL) c = luaL_checkoption(L, -1, NULL, names);
    lua_pop(L, 1);
  }
  return c;
}

static uint32_t random32(void) {
  uint32_t v = 0;
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) v = (uint32_t)(uintptr_t)&v ^ 0x9e3779b9u;
  return v;
}

static void check_table_or_none(lua_State *L, int i) {
  if (!lua_isnoneornil(L, i)) luaL_checktype(L, i, LUA_TTABLE);
}

/* ---- Buffer ------------------------------------------------------------- */
static wm_out *check_buffer(lua_State *L, int i) { return luaL_checkudata(L, i, BUFFER); }

static int buffer_new(lua_State *L) {
  wm_out *o = lua_newuserdatauv(L, sizeof *o, 0);
  memset(o, 0, sizeof *o);
  o->grow = grow;
  luaL_setmetatable(L, BUFFER);
  return 1;
}

static int buffer_gc(lua_State *L) {
  wm_out_free(check_buffer(L, 1));
  return 0;
}

static size_t check_item(lua_State *L, wm_out *o, int arg) {
  lua_Integer i = luaL_checkinteger(L, arg);
  luaL_argcheck(L, i >= 1 && (size_t)i <= o->n, arg, "item index out of range");
  return (size_t)i - 1;
}

static int buffer_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_buffer(L, 1)->n);
  return 1;
}

static int buffer_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_buffer(L, 1)->len);
  return 1;
}

static int buffer_get(lua_State *L) {
  wm_out *o = check_buffer(L, 1);
  size_t i = check_item(L, o, 2);
  lua_pushlstring(L, (const char *)o->data + o->off[i], wm_out_item_len(o, i));
  return 1;
}

static int buffer_span(lua_State *L) {
  wm_out *o = check_buffer(L, 1);
  size_t i = check_item(L, o, 2);
  lua_pushinteger(L, (lua_Integer)o->off[i]);
  lua_pushinteger(L, (lua_Integer)wm_out_item_len(o, i));
  return 2;
}

static int buffer_meta(lua_State *L) {
  wm_out *o = check_buffer(L, 1);
  size_t i = check_item(L, o, 2);
  const wm_meta *m = &o->meta[i];
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, (lua_Integer)m->ts);
  lua_setfield(L, -2, "ts");
  lua_pushinteger(L, m->seq);
  lua_setfield(L, -2, "seq");
  lua_pushinteger(L, m->type);
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, m->stream);
  lua_setfield(L, -2, "stream");
  lua_pushinteger(L, (lua_Integer)m->flags);
  lua_setfield(L, -2, "flags");
  lua_pushboolean(L, (m->flags & WM_F_MARKER) != 0);
  lua_setfield(L, -2, "marker");
  lua_pushboolean(L, (m->flags & WM_F_KEY) != 0);
  lua_setfield(L, -2, "key");
  lua_pushboolean(L, (m->flags & WM_F_GAP) != 0);
  lua_setfield(L, -2, "gap");
  lua_pushboolean(L, (m->flags & WM_F_CONFIG) != 0);
  lua_setfield(L, -2, "config");
  lua_pushboolean(L, (m->flags & WM_F_EOS) != 0);
  lua_setfield(L, -2, "eos");
  return 1;
}

/* ts of item i without building a table (hot path) */
static int buffer_ts(lua_State *L) {
  wm_out *o = check_buffer(L, 1);
  size_t i = check_item(L, o, 2);
  lua_pushinteger(L, (lua_Integer)o->meta[i].ts);
  lua_pushinteger(L, (lua_Integer)o->meta[i].flags);
  return 2;
}

static int buffer_data(lua_State *L) {
  wm_out *o = check_buffer(L, 1);
  lua_pushlstring(L, o->data ? (const char *)o->data : "", o->len);
  return 1;
}

static int buffer_clear(lua_State *L) {
  wm_out_reset(check_buffer(L, 1));
  return 0;
}

static int buffer_tostring(lua_State *L) {
  wm_out *o = check_buffer(L, 1);
  lua_pushfstring(L, BUFFER " (%d items, %d bytes)", (int)o->n, (int)o->len);
  return 1;
}

static int nomem(lua_State *L) { return luaL_error(L, "wxhw.media: out of memory"); }

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
    return nomem(L);
  }
  lua_pushlstring(L, b.p ? (const char *)b.p : "", b.len);
  wm_buf_free(&b);
  return 1;
}

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
  h.pt = (uint8_t)opt_int(L, 1, "pt", 96, 0, 127);
  h.seq = (uint16_t)opt_int(L, 1, "seq", 0, 0, 65535);
  h.ts = (uint32_t)opt_int(L, 1, "ts", 0, 0, 4294967295LL);
  h.ssrc = (uint32_t)opt_int(L, 1, "ssrc", 0, 0, 4294967295LL);
  h.marker = (uint8_t)opt_bool(L, 1, "marker", 0);
  pad = opt_int(L, 1, "padding", 0, 0, 255);
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
    h.ext_profile = (uint16_t)opt_int(L, 1, "ext_profile", 0xBEDE, 0, 65535);
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

/* ---- Packetizer --------------------------------------------------------- */
static int packetizer_new(lua_State *L) {
  wm_vpack *pk;
  check_table_or_none(L, 1);
  pk = lua_newuserdatauv(L, sizeof *pk, 0);
  memset(pk, 0, sizeof *pk);
  luaL_setmetatable(L, PACKETIZER);
  pk->codec = opt_codec(L, 1);
  pk->mtu = (size_t)opt_int(L, 1, "mtu", 1200, 17, 65535);
  pk->pt = (uint8_t)opt_int(L, 1, "pt", 96, 0, 127);
  pk->ssrc = (uint32_t)opt_int(L, 1, "ssrc", random32(), 0, 4294967295LL);
  pk->seq = (uint16_t)opt_int(L, 1, "seq", random32() & 0xffff, 0, 65535);
  pk->aggregate = opt_bool(L, 1, "aggregate", 1);
  return 1;
}

/* pk:pack(au, ts, buf) -> packets written into buf (buf is reset first) */
static int packetizer_pack(lua_State *L) {
  wm_vpack *pk = luaL_checkudata(L, 1, PACKETIZER);
  size_t len;
  const uint8_t *au = (const uint8_t *)luaL_checklstring(L, 2, &len);
  uint32_t ts = (uint32_t)luaL_checkinteger(L, 3);
  wm_out *o = check_buffer(L, 4);
  int n;
  wm_out_reset(o);
  n = wm_vpack_au(pk, au, len, ts, o);
  if (n < 0) return nomem(L);
  lua_pushinteger(L, n);
  return 1;
}

static int packetizer_state(lua_State *L) {
  wm_vpack *pk = luaL_checkudata(L, 1, PACKETIZER);
  lua_pushinteger(L, pk->seq);
  lua_pushinteger(L, (lua_Integer)pk->ssrc);
  return 2;
}

static int packetizer_tostring(lua_State *L) {
  wm_vpack *pk = luaL_checkudata(L, 1, PACKETIZER);
  lua_pushfstring(L, PACKETIZER " (%s, mtu %d, pt %d)", pk->codec == WM_H265 ? "h265" : "h264",
                  (int)pk->mtu, (int)pk->pt);
  return 1;
}

/* ---- Depacketizer ------------------------------------------------------- */
static int depacketizer_new(lua_State *L) {
  wm_vdepack *d;
  int codec, wait;
  check_table_or_none(L, 1);
  codec = opt_codec(L, 1);
  wait = opt_bool(L, 1, "wait_keyframe", 1);
  d = lua_newuserdatauv(L, sizeof *d, 0);
  wm_vdepack_init(d, codec, wait);
  luaL_setmetatable(L, DEPACKETIZER);
  return 1;
}

static wm_vdepack *check_depack(lua_State *L) { return luaL_checkudata(L, 1, DEPACKETIZER); }

static int depacketizer_gc(lua_State *L) {
  wm_vdepack_free(check_depack(L));
  return 0;
}

/* dp:push(packet, buf) -> frames written into buf [, err when rejected] */
static int depacketizer_push(lua_State *L) {
  wm_vdepack *d = check_depack(L);
  size_t len;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &len);
  wm_out *o = check_buffer(L, 3);
  int n;
  wm_out_reset(o);
  n = wm_vdepack_push(d, p, len, o);
  if (n < 0) return nomem(L);
  lua_pushinteger(L, n);
  if (d->why) {
    wxhw_fail(L, "input", "%s", d->why);
    lua_remove(L, -2);
    return 2;
  }
  return 1;
}

static int depacketizer_flush(lua_State *L) {
  wm_vdepack *d = check_depack(L);
  wm_out *o = check_buffer(L, 2);
  int n;
  wm_out_reset(o);
  if ((n = wm_vdepack_flush(d, o)) < 0) return nomem(L);
  lua_pushinteger(L, n);
  return 1;
}

static void setnum(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static int depacketizer_stats(lua_State *L) {
  wm_vdepack *d = check_depack(L);
  lua_createtable(L, 0, 5);
  setnum(L, "frames", d->frames);
  setnum(L, "dropped_frames", d->dropped_frames);
  setnum(L, "malformed", d->malformed);
  setnum(L, "gaps", d->gaps);
  lua_pushboolean(L, d->wait_key);
  lua_setfield(L, -2, "waiting_keyframe");
  return 1;
}

static int depacketizer_tostring(lua_State *L) {
  wm_vdepack *d = check_depack(L);
  lua_pushfstring(L, DEPACKETIZER " (%s, %d frames)", d->codec == WM_H265 ? "h265" : "h264",
                  (int)d->frames);
  return 1;
}

/* ---- Receiver ----------------------------------------------------------- */
static int receiver_new(lua_State *L) {
  wm_rtp_rx *rx;
  size_t window, maxp;
  check_table_or_none(L, 1);
  window = (size_t)opt_int(L, 1, "window", 64, 1, 4096);
  maxp = (size_t)opt_int(L, 1, "max_packet", 1500, 12, 65536);
  rx = lua_newuserdatauv(L, sizeof *rx, 0);
  memset(rx, 0, sizeof *rx);
  luaL_setmetatable(L, RECEIVER);
  if (wm_rtp_rx_init(rx, window, maxp) != WM_OK) return nomem(L);
  return 1;
}

static wm_rtp_rx *check_rx(lua_State *L) { return luaL_checkudata(L, 1, RECEIVER); }

static int receiver_gc(lua_State *L) {
  wm_rtp_rx_free(check_rx(L));
  return 0;
}

/* rx:push(packet, buf) -> packets now deliverable in order [, err] */
static int receiver_push(lua_State *L) {
  wm_rtp_rx *rx = check_rx(L);
  size_t len;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &len);
  wm_out *o = check_buffer(L, 3);
  const char *why = NULL;
  int n;
  if (!rx->slots) return luaL_error(L, RECEIVER " is closed");
  wm_out_reset(o);
  n = wm_rtp_rx_push(rx, p, len, o, &why);
  if (n == WM_ENOMEM) return nomem(L);
  if (n == WM_EBAD) {
    lua_pushinteger(L, 0);
    wxhw_fail(L, "input", "%s", why);
    lua_remove(L, -2);
    return 2;
  }
  lua_pushinteger(L, n);
  return 1;
}

static int receiver_flush(lua_State *L) {
  wm_rtp_rx *rx = check_rx(L);
  wm_out *o = check_buffer(L, 2);
  int n;
  if (!rx->slots) return luaL_error(L, RECEIVER " is closed");
  wm_out_reset(o);
  if ((n = wm_rtp_rx_pop(rx, o, 1)) < 0) return nomem(L);
  lua_pushinteger(L, n);
  return 1;
}

static int receiver_stats(lua_State *L) {
  wm_rtp_rx *rx = check_rx(L);
  lua_createtable(L, 0, 7);
  setnum(L, "received", rx->received);
  setnum(L, "delivered", rx->delivered);
  setnum(L, "lost", rx->lost);
  setnum(L, "duplicates", rx->duplicates);
  setnum(L, "late", rx->late);
  setnum(L, "reordered", rx->reordered);
  setnum(L, "malformed", rx->malformed);
  return 1;
}

static int receiver_tostring(lua_State *L) {
  wm_rtp_rx *rx = check_rx(L);
  lua_pushfstring(L, RECEIVER " (window %d)", (int)rx->window);
  return 1;
}

/* ---- device framing ---------------------------------------------------- */
static void frame_hdr_opts(lua_State *L, wm_frame_hdr *h) {
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(h, 0, sizeof *h);
  if (opt_int(L, 1, "type", -1, 0, 255) < 0) luaL_error(L, "frame: option 'type' is required");
  h->type = (uint8_t)opt_int(L, 1, "type", 0, 0, 255);
  h->flags = (uint8_t)opt_int(L, 1, "flags", 0, 0, 255);
  h->stream = (uint16_t)opt_int(L, 1, "stream", 0, 0, 65535);
  h->seq = (uint16_t)opt_int(L, 1, "seq", 0, 0, 65535);
  h->ts_ms = (uint32_t)opt_int(L, 1, "ts", 0, 0, 4294967295LL);
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

static int deframer_new(lua_State *L) {
  wm_deframer *d;
  lua_Integer max;
  check_table_or_none(L, 1);
  max = opt_int(L, 1, "max_len", 4 << 20, 0, 0x7fffffff);
  d = lua_newuserdatauv(L, sizeof *d, 0);
  wm_deframer_init(d, (uint32_t)max);
  luaL_setmetatable(L, DEFRAMER);
  return 1;
}

static wm_deframer *check_deframer(lua_State *L) { return luaL_checkudata(L, 1, DEFRAMER); }

static int deframer_gc(lua_State *L) {
  wm_deframer_free(check_deframer(L));
  return 0;
}

/* d:push(bytes, buf) -> frames written into buf [, err: stream unusable] */
static int deframer_push(lua_State *L) {
  wm_deframer *d = check_deframer(L);
  size_t len;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &len);
  wm_out *o = check_buffer(L, 3);
  int n;
  wm_out_reset(o);
  n = wm_deframer_push(d, p, len, o);
  if (n == WM_ENOMEM) return nomem(L);
  lua_pushinteger(L, (lua_Integer)o->n);
  if (n == WM_EBAD) {
    wxhw_fail(L, "input", "%s", d->why);
    lua_remove(L, -2);
    return 2;
  }
  return 1;
}

/* bytes buffered towards the next frame (0 on a frame boundary) */
static int deframer_pending(lua_State *L) {
  wm_deframer *d = check_deframer(L);
  lua_pushinteger(L, (lua_Integer)(d->hfill + d->body.len));
  return 1;
}

static int deframer_tostring(lua_State *L) {
  wm_deframer *d = check_deframer(L);
  lua_pushfstring(L, DEFRAMER " (%s)", d->failed ? "failed" : "ok");
  return 1;
}

/* ---- PCM / G.711 -------------------------------------------------------- */
/* S16LE string -> host int16 array in a scratch userdata (explicit byte
 * order, so big-endian hosts work too) */
static int16_t *pcm_in(lua_State *L, int arg, size_t *nsamples) {
  size_t len, i;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, arg, &len);
  int16_t *s;
  if (len % 2) luaL_argerror(L, arg, "PCM S16LE must have an even number of bytes");
  *nsamples = len / 2;
  s = lua_newuserdatauv(L, len ? len : 1, 0);
  for (i = 0; i < len / 2; i++) s[i] = (int16_t)(uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
  return s;
}

static void pcm_push(lua_State *L, const int16_t *s, size_t n) {
  uint8_t *w = lua_newuserdatauv(L, n ? 2 * n : 1, 0);
  size_t i;
  for (i = 0; i < n; i++) {
    w[2 * i] = (uint8_t)((uint16_t)s[i] & 0xff);
    w[2 * i + 1] = (uint8_t)((uint16_t)s[i] >> 8);
  }
  lua_pushlstring(L, (const char *)w, 2 * n);
}

static int check_law(lua_State *L, int arg) {
  static const char *const laws[] = {"ulaw", "alaw", NULL};
  return luaL_checkoption(L, arg, NULL, laws);
}

/* g711_encode(pcm_s16le, "ulaw"|"alaw") -> bytes */
static int l_g711_encode(lua_State *L) {
  size_t n;
  int law = check_law(L, 2);
  int16_t *s = pcm_in(L, 1, &n);
  uint8_t *w = lua_newuserdatauv(L, n ? n : 1, 0);
  if (law == 0) wm_ulaw_encode(s, n, w);
  else wm_alaw_encode(s, n, w);
  lua_pushlstring(L, (const char *)w, n);
  return 1;
}

/* g711_decode(bytes, "ulaw"|"alaw") -> pcm_s16le */
static int l_g711_decode(lua_State *L) {
  size_t n;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
  int law = check_law(L, 2);
  int16_t *s = lua_newuserdatauv(L, n ? 2 * n : 2, 0);
  if (law == 0) wm_ulaw_decode(p, n, s);
  else wm_alaw_decode(p, n, s);
  pcm_push(L, s, n);
  return 1;
}

/* resampler(from_rate, to_rate): 8000 <-> 16000 */
static int resampler_new(lua_State *L) {
  lua_Integer from = luaL_checkinteger(L, 1), to = luaL_checkinteger(L, 2);
  wm_resampler *r;
  if (!((from == 8000 && to == 16000) || (from == 16000 && to == 8000)))
    return luaL_error(L, "resampler: only 8000 <-> 16000 is supported");
  r = lua_newuserdatauv(L, sizeof *r, 0);
  wm_resampler_init(r, from == 8000);
  luaL_setmetatable(L, RESAMPLER);
  return 1;
}

/* rs:process(pcm) -> pcm at the other rate (delay-compensated) */
static int resampler_process(lua_State *L) {
  wm_resampler *r = luaL_checkudata(L, 1, RESAMPLER);
  size_t n, w;
  int16_t *in = pcm_in(L, 2, &n), *out;
  out = lua_newuserdatauv(L, (2 * n + 2) * sizeof *out, 0);
  w = wm_resample(r, in, n, out);
  pcm_push(L, out, w);
  return 1;
}

/* rs:flush() -> the tail; the resampler is then ready for a new stream */
static int resampler_flush(lua_State *L) {
  wm_resampler *r = luaL_checkudata(L, 1, RESAMPLER);
  int16_t out[2 * WM_RS_K + 2];
  size_t w = wm_resample_flush(r, out);
  pcm_push(L, out, w);
  return 1;
}

static int resampler_tostring(lua_State *L) {
  wm_resampler *r = luaL_checkudata(L, 1, RESAMPLER);
  lua_pushstring(L, r->up ? RESAMPLER " (8000 -> 16000)" : RESAMPLER " (16000 -> 8000)");
  return 1;
}

/* framer{rate=16000, channels=1, ms=20, max_gap_ms=1000} */
static int framer_new(lua_State *L) {
  wm_framer *f;
  lua_Integer rate, ch, ms, gap;
  check_table_or_none(L, 1);
  rate = opt_int(L, 1, "rate", 16000, 1000, 192000);
  ch = opt_int(L, 1, "channels", 1, 1, 8);
  ms = opt_int(L, 1, "ms", 20, 1, 1000);
  gap = opt_int(L, 1, "max_gap_ms", 1000, 0, 60000);
  f = lua_newuserdatauv(L, sizeof *f, 0);
  memset(f, 0, sizeof *f);
  luaL_setmetatable(L, FRAMER);
  if (wm_framer_init(f, (unsigned)rate, (unsigned)ch, (unsigned)ms) == WM_EINVAL)
    return luaL_error(L, "framer: rate * ms must be a whole number of samples");
  if (!f->buf) return nomem(L);
  f->max_gap = rate * gap / 1000;
  return 1;
}

static wm_framer *check_framer(lua_State *L) { return luaL_checkudata(L, 1, FRAMER); }

static int framer_gc(lua_State *L) {
  wm_framer_free(check_framer(L));
  return 0;
}

/* fr:push(pcm, at_sample_or_nil, buf) -> frames written into buf */
static int framer_push(lua_State *L) {
  wm_framer *f = check_framer(L);
  size_t len;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &len);
  lua_Integer at = luaL_optinteger(L, 3, -1);
  wm_out *o = check_buffer(L, 4);
  int n;
  if (!f->buf) return luaL_error(L, FRAMER " is closed");
  if (len % (2u * f->channels))
    return wxhw_fail(L, "input", "PCM chunk of %d bytes is not a whole number of samples",
                     (int)len);
  wm_out_reset(o);
  if ((n = wm_framer_push(f, p, len, at, o)) < 0) return nomem(L);
  lua_pushinteger(L, n);
  return 1;
}

static int framer_flush(lua_State *L) {
  wm_framer *f = check_framer(L);
  wm_out *o = check_buffer(L, 2);
  int n;
  if (!f->buf) return luaL_error(L, FRAMER " is closed");
  wm_out_reset(o);
  if ((n = wm_framer_flush(f, o)) < 0) return nomem(L);
  lua_pushinteger(L, n);
  return 1;
}

static int framer_stats(lua_State *L) {
  wm_framer *f = check_framer(L);
  lua_createtable(L, 0, 4);
  setnum(L, "filled_samples", f->filled_samples);
  setnum(L, "dropped_samples", f->dropped_samples);
  setnum(L, "next", (uint64_t)f->next);
  setnum(L, "frame_bytes", (uint64_t)f->frame_samples * f->channels * 2);
  return 1;
}

static int framer_tostring(lua_State *L) {
  wm_framer *f = check_framer(L);
  lua_pushfstring(L, FRAMER " (%d Hz, %d samples/frame)", (int)f->rate, (int)f->frame_samples);
  return 1;
}

/* ---- FLV ---------------------------------------------------------------- */
typedef struct {
  wm_flv f;
  int audio, video;
} flvmux;

/* flv_muxer{video="h264"|"h265"|false, audio=true, hevc="codecid12"|"enhanced"} */
static int flvmux_new(lua_State *L) {
  static const char *const flavours[] = {"codecid12", "enhanced", NULL};
  flvmux *m;
  int codec = WM_H264, video = 1, audio, flavour = WM_FLV_H265_CODECID12;
  check_table_or_none(L, 1);
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
  audio = opt_bool(L, 1, "audio", 1);
  m = lua_newuserdatauv(L, sizeof *m, 0);
  wm_flv_init(&m->f, codec, flavour);
  m->audio = audio, m->video = video;
  luaL_setmetatable(L, FLVMUX);
  return 1;
}

static flvmux *check_flvmux(lua_State *L) { return luaL_checkudata(L, 1, FLVMUX); }

static int flvmux_gc(lua_State *L) {
  wm_flv_free(&check_flvmux(L)->f);
  return 0;
}

static int flv_result(lua_State *L, wm_out *o, int r, const char *why) {
  if (r == WM_ENOMEM) return nomem(L);
  if (r == WM_EINVAL) why = "FLV: tag larger than 16 MiB";
  lua_pushinteger(L, (lua_Integer)o->n);
  if (r < 0) {
    wxhw_fail(L, "input", "%s", why);
    lua_remove(L, -2);
    return 2;
  }
  return 1;
}

/* mux:header(buf) -> 1 (the 9-byte header + PreviousTagSize0) */
static int flvmux_header(lua_State *L) {
  flvmux *m = check_flvmux(L);
  wm_out *o = check_buffer(L, 2);
  wm_out_reset(o);
  return flv_result(L, o, wm_flv_header(o, m->audio, m->video), NULL);
}

/* mux:video(annexb_au, dts_ms, cts_ms, buf) -> tags written [, err] */
static int flvmux_video(lua_State *L) {
  flvmux *m = check_flvmux(L);
  size_t len;
  const uint8_t *au = (const uint8_t *)luaL_checklstring(L, 2, &len);
  lua_Integer dts = luaL_checkinteger(L, 3), cts = luaL_optinteger(L, 4, 0);
  wm_out *o = check_buffer(L, 5);
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
  wm_out *o = check_buffer(L, 4);
  const char *why = NULL;
  luaL_argcheck(L, ts >= 0 && ts <= 0x7fffffff, 3, "timestamp must be 0..2^31-1 ms");
  int r;
  wm_out_reset(o);
  r = wm_flv_aac(&m->f, p, len, (uint32_t)ts, o, &why);
  return flv_result(L, o, r, why);
}

static int flvmux_tostring(lua_State *L) {
  flvmux *m = check_flvmux(L);
  lua_pushfstring(L, FLVMUX " (%s%s)", m->video ? (m->f.video_codec == WM_H265 ? "h265" : "h264") : "",
                  m->audio ? " aac" : "");
  return 1;
}

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

/* ---- parameter-set reorderer ("prepare for WeChat") ---------------------- */
static int reorder_new(lua_State *L) {
  wm_reorder *r;
  int codec;
  check_table_or_none(L, 1);
  codec = opt_codec(L, 1);
  r = lua_newuserdatauv(L, sizeof *r, 0);
  wm_reorder_init(r, codec);
  luaL_setmetatable(L, REORDER);
  return 1;
}

static int reorder_gc(lua_State *L) {
  wm_reorder_free(luaL_checkudata(L, 1, REORDER));
  return 0;
}

/* r:push(au, ts, buf) -> 0 (dropped) or 1 (the access unit to send) */
static int reorder_push(lua_State *L) {
  wm_reorder *r = luaL_checkudata(L, 1, REORDER);
  size_t len;
  const uint8_t *au = (const uint8_t *)luaL_checklstring(L, 2, &len);
  lua_Integer ts = luaL_optinteger(L, 3, 0);
  wm_out *o = check_buffer(L, 4);
  int n;
  wm_out_reset(o);
  if ((n = wm_reorder_push(r, au, len, ts, o)) < 0) return nomem(L);
  lua_pushinteger(L, n);
  return 1;
}

static int reorder_tostring(lua_State *L) {
  wm_reorder *r = luaL_checkudata(L, 1, REORDER);
  lua_pushfstring(L, REORDER " (%s)", r->codec == WM_H265 ? "h265" : "h264");
  return 1;
}

/* ---- audio RTP ---------------------------------------------------------- */
enum { A_PCMU, A_PCMA, A_OPUS, A_AAC };
typedef struct {
  wm_apack a;
  int codec;
  size_t mtu;
} apack;

/* audio_packetizer{codec="pcmu"|"pcma"|"opus"|"aac", pt=, ssrc=, seq=, ts=,
 *                  ptime_ms=20 (G.711), mtu=1200 (AAC)} */
static int apack_new(lua_State *L) {
  static const char *const names[] = {"pcmu", "pcma", "opus", "aac", NULL};
  apack *p;
  int codec;
  luaL_checktype(L, 1, LUA_TTABLE);
  wxhw_getfield(L, 1, "codec");
  codec = luaL_checkoption(L, -1, NULL, names);
  lua_pop(L, 1);
  p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  luaL_setmetatable(L, APACK);
  p->codec = codec;
  p->a.pt = (uint8_t)opt_int(L, 1, "pt", codec == A_PCMU ? 0 : codec == A_PCMA ? 8 : 96, 0, 127);
  p->a.ssrc = (uint32_t)opt_int(L, 1, "ssrc", random32(), 0, 4294967295LL);
  p->a.seq = (uint16_t)opt_int(L, 1, "seq", random32() & 0xffff, 0, 65535);
  p->a.ts = (uint32_t)opt_int(L, 1, "ts", random32(), 0, 4294967295LL);
  p->a.ptime_samples = (size_t)opt_int(L, 1, "ptime_ms", 20, 10, 120) * 8;
  p->mtu = (size_t)opt_int(L, 1, "mtu", 1200, 17, 65535);
  p->a.talkspurt = 1;
  return 1;
}

static apack *check_apack(lua_State *L) { return luaL_checkudata(L, 1, APACK); }

static int apack_gc(lua_State *L) {
  wm_buf_free(&check_apack(L)->a.pending);
  return 0;
}

/* ap:pack(data, buf) -> packets [, err]. G.711: any number of samples (the
 * remainder waits for the next call); Opus: one packet; AAC: ADTS frames. */
static int apack_pack(lua_State *L) {
  apack *p = check_apack(L);
  size_t len;
  const uint8_t *d = (const uint8_t *)luaL_checklstring(L, 2, &len);
  wm_out *o = check_buffer(L, 3);
  const char *why = "Opus: malformed TOC";
  int r;
  wm_out_reset(o);
  if (p->codec == A_OPUS) r = wm_opus_pack(&p->a, d, len, o);
  else if (p->codec == A_AAC) r = wm_aac_pack(&p->a, d, len, p->mtu, o, &why);
  else r = wm_g711_pack(&p->a, d, len, o);
  if (r == WM_ENOMEM) return nomem(L);
  lua_pushinteger(L, (lua_Integer)o->n);
  if (r < 0) {
    wxhw_fail(L, "input", "%s", why);
    lua_remove(L, -2);
    return 2;
  }
  return 1;
}

/* ap:talkspurt() -> marks the next packet as the start of a talkspurt */
static int apack_talkspurt(lua_State *L) {
  check_apack(L)->a.talkspurt = 1;
  return 0;
}

static int apack_state(lua_State *L) {
  apack *p = check_apack(L);
  lua_pushinteger(L, p->a.seq);
  lua_pushinteger(L, (lua_Integer)p->a.ssrc);
  lua_pushinteger(L, (lua_Integer)p->a.ts);
  return 3;
}

static int apack_tostring(lua_State *L) {
  static const char *const names[] = {"pcmu", "pcma", "opus", "aac"};
  apack *p = check_apack(L);
  lua_pushfstring(L, APACK " (%s, pt %d)", names[p->codec], (int)p->a.pt);
  return 1;
}

static int l_opus_samples(lua_State *L) {
  size_t n;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
  int s = wm_opus_samples(p, n);
  if (s < 0) return wxhw_fail(L, "input", "Opus: malformed TOC");
  lua_pushinteger(L, s);
  return 1;
}

/* aac_unpack(rtp_packet, buf) -> raw AUs written [, err] */
static int l_aac_unpack(lua_State *L) {
  size_t n;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
  wm_out *o = check_buffer(L, 2);
  const char *why = NULL;
  int r;
  wm_out_reset(o);
  r = wm_aac_unpack(p, n, o, &why);
  if (r == WM_ENOMEM) return nomem(L);
  lua_pushinteger(L, (lua_Integer)o->n);
  if (r < 0) {
    wxhw_fail(L, "input", "%s", why);
    lua_remove(L, -2);
    return 2;
  }
  return 1;
}

/* ---- counter unwrap ----------------------------------------------------- */
typedef struct {
  wm_unwrap u;
  int bits;
} unwrapper;

/* unwrapper(16|32) -> u; u:push(v) -> the 64-bit extended value */
static int unwrap_new(lua_State *L) {
  lua_Integer bits = luaL_optinteger(L, 1, 32);
  unwrapper *w;
  luaL_argcheck(L, bits == 16 || bits == 32, 1, "bits must be 16 or 32");
  w = lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->bits = (int)bits;
  luaL_setmetatable(L, UNWRAP);
  return 1;
}

static int unwrap_push(lua_State *L) {
  unwrapper *w = luaL_checkudata(L, 1, UNWRAP);
  lua_Integer v = luaL_checkinteger(L, 2);
  luaL_argcheck(L, v >= 0 && v < (w->bits == 16 ? 65536 : 4294967296LL), 2, "value out of range");
  lua_pushinteger(L, (lua_Integer)(w->bits == 16 ? wm_unwrap16(&w->u, (uint16_t)v)
                                                 : wm_unwrap32(&w->u, (uint32_t)v)));
  return 1;
}

/* ---- registration ------------------------------------------------------- */
static const luaL_Reg buffer_methods[] = {
    {"count", buffer_len}, {"bytes", buffer_bytes}, {"get", buffer_get},   {"span", buffer_span},
    {"meta", buffer_meta}, {"ts", buffer_ts},       {"data", buffer_data}, {"clear", buffer_clear},
    {NULL, NULL}};
static const luaL_Reg buffer_meta_mt[] = {{"__gc", buffer_gc},
#if LUA_VERSION_NUM >= 504
                                          {"__close", buffer_gc},
#endif
                                          {"__len", buffer_len},
                                          {"__tostring", buffer_tostring},
                                          {NULL, NULL}};
static const luaL_Reg packetizer_methods[] = {
    {"pack", packetizer_pack}, {"state", packetizer_state}, {NULL, NULL}};
static const luaL_Reg packetizer_mt[] = {{"__tostring", packetizer_tostring}, {NULL, NULL}};
static const luaL_Reg depacketizer_methods[] = {{"push", depacketizer_push},
                                                {"flush", depacketizer_flush},
                                                {"stats", depacketizer_stats},
                                                {NULL, NULL}};
static const luaL_Reg depacketizer_mt[] = {{"__gc", depacketizer_gc},
#if LUA_VERSION_NUM >= 504
                                           {"__close", depacketizer_gc},
#endif
                                           {"__tostring", depacketizer_tostring},
                                           {NULL, NULL}};
static const luaL_Reg receiver_methods[] = {{"push", receiver_push},
                                            {"flush", receiver_flush},
                                            {"stats", receiver_stats},
                                            {NULL, NULL}};
static const luaL_Reg receiver_mt[] = {{"__gc", receiver_gc},
#if LUA_VERSION_NUM >= 504
                                       {"__close", receiver_gc},
#endif
                                       {"__tostring", receiver_tostring},
                                       {NULL, NULL}};

static const luaL_Reg deframer_methods[] = {
    {"push", deframer_push}, {"pending", deframer_pending}, {NULL, NULL}};
static const luaL_Reg deframer_mt[] = {{"__gc", deframer_gc},
#if LUA_VERSION_NUM >= 504
                                       {"__close", deframer_gc},
#endif
                                       {"__tostring", deframer_tostring},
                                       {NULL, NULL}};

static const luaL_Reg resampler_methods[] = {
    {"process", resampler_process}, {"flush", resampler_flush}, {NULL, NULL}};
static const luaL_Reg resampler_mt[] = {{"__tostring", resampler_tostring}, {NULL, NULL}};
static const luaL_Reg framer_methods[] = {
    {"push", framer_push}, {"flush", framer_flush}, {"stats", framer_stats}, {NULL, NULL}};
static const luaL_Reg framer_mt[] = {{"__gc", framer_gc},
#if LUA_VERSION_NUM >= 504
                                     {"__close", framer_gc},
#endif
                                     {"__tostring", framer_tostring},
                                     {NULL, NULL}};

static const luaL_Reg flvmux_methods[] = {{"header", flvmux_header},
                                          {"video", flvmux_video},
                                          {"aac", flvmux_aac},
                                          {NULL, NULL}};
static const luaL_Reg flvmux_mt[] = {{"__gc", flvmux_gc},
#if LUA_VERSION_NUM >= 504
                                     {"__close", flvmux_gc},
#endif
                                     {"__tostring", flvmux_tostring},
                                     {NULL, NULL}};

static const luaL_Reg reorder_methods[] = {{"push", reorder_push}, {NULL, NULL}};
static const luaL_Reg reorder_mt[] = {{"__gc", reorder_gc},
#if LUA_VERSION_NUM >= 504
                                      {"__close", reorder_gc},
#endif
                                      {"__tostring", reorder_tostring},
                                      {NULL, NULL}};

static const luaL_Reg apack_methods[] = {{"pack", apack_pack},
                                         {"talkspurt", apack_talkspurt},
                                         {"state", apack_state},
                                         {NULL, NULL}};
static const luaL_Reg apack_mt[] = {{"__gc", apack_gc},
#if LUA_VERSION_NUM >= 504
                                    {"__close", apack_gc},
#endif
                                    {"__tostring", apack_tostring},
                                    {NULL, NULL}};

static const luaL_Reg unwrap_methods[] = {{"push", unwrap_push}, {NULL, NULL}};

static const luaL_Reg functions[] = {{"buffer", buffer_new},
                                     {"unwrapper", unwrap_new},
                                     {"audio_packetizer", apack_new},
                                     {"opus_samples", l_opus_samples},
                                     {"aac_unpack", l_aac_unpack},
                                     {"reorderer", reorder_new},
                                     {"flv_muxer", flvmux_new},
                                     {"flv_tags", l_flv_tags},
                                     {"g711_encode", l_g711_encode},
                                     {"g711_decode", l_g711_decode},
                                     {"resampler", resampler_new},
                                     {"framer", framer_new},
                                     {"frame", l_frame},
                                     {"frame_header", l_frame_header},
                                     {"deframer", deframer_new},
                                     {"nal_spans", l_nal_spans},
                                     {"nal_count", l_nal_count},
                                     {"annexb_to_avcc", l_annexb_to_avcc},
                                     {"rtp_parse", l_rtp_parse},
                                     {"rtp_build", l_rtp_build},
                                     {"packetizer", packetizer_new},
                                     {"depacketizer", depacketizer_new},
                                     {"receiver", receiver_new},
                                     {NULL, NULL}};

int wxhw_open_media(lua_State *L) {
  wxhw_newclass(L, BUFFER, buffer_methods, buffer_meta_mt);
  wxhw_newclass(L, PACKETIZER, packetizer_methods, packetizer_mt);
  wxhw_newclass(L, DEPACKETIZER, depacketizer_methods, depacketizer_mt);
  wxhw_newclass(L, RECEIVER, receiver_methods, receiver_mt);
  wxhw_newclass(L, DEFRAMER, deframer_methods, deframer_mt);
  wxhw_newclass(L, RESAMPLER, resampler_methods, resampler_mt);
  wxhw_newclass(L, FRAMER, framer_methods, framer_mt);
  wxhw_newclass(L, FLVMUX, flvmux_methods, flvmux_mt);
  wxhw_newclass(L, REORDER, reorder_methods, reorder_mt);
  wxhw_newclass(L, APACK, apack_methods, apack_mt);
  wxhw_newclass(L, UNWRAP, unwrap_methods, NULL);
  luaL_newlib(L, functions);
  return 1;
}
