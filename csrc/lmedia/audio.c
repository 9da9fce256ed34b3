/* Audio: PCM and G.711, the 8k<->16k Resampler, the PCM Framer, and audio
 * over RTP (the AudioPacketizer for G.711/Opus/AAC, AAC unpacking). */
#include <string.h>

#include "lmedia.h"

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

/* ---- Resampler ---------------------------------------------------------- */
static const lm_class resampler_class;

/* resampler(from_rate, to_rate): 8000 <-> 16000 */
static int resampler_new(lua_State *L) {
  lua_Integer from = luaL_checkinteger(L, 1), to = luaL_checkinteger(L, 2);
  if (!((from == 8000 && to == 16000) || (from == 16000 && to == 8000)))
    return luaL_error(L, "resampler: only 8000 <-> 16000 is supported");
  wm_resampler_init(lm_new(L, &resampler_class), from == 8000);
  return 1;
}

/* rs:process(pcm) -> pcm at the other rate (delay-compensated) */
static int resampler_process(lua_State *L) {
  wm_resampler *r = lm_check(L, 1, &resampler_class);
  size_t n, w;
  int16_t *in = pcm_in(L, 2, &n), *out;
  out = lua_newuserdatauv(L, (2 * n + 2) * sizeof *out, 0);
  w = wm_resample(r, in, n, out);
  pcm_push(L, out, w);
  return 1;
}

/* rs:flush() -> the tail; the resampler is then ready for a new stream */
static int resampler_flush(lua_State *L) {
  wm_resampler *r = lm_check(L, 1, &resampler_class);
  int16_t out[2 * WM_RS_K + 2];
  size_t w = wm_resample_flush(r, out);
  pcm_push(L, out, w);
  return 1;
}

static void resampler_describe(lua_State *L, const void *p) {
  lua_pushstring(L, ((const wm_resampler *)p)->up ? "8000 -> 16000" : "16000 -> 8000");
}

static const luaL_Reg resampler_methods[] = {
    {"process", resampler_process}, {"flush", resampler_flush}, {NULL, NULL}};
static const lm_class resampler_class = {"wxhw.media.Resampler", sizeof(wm_resampler), NULL,
                                         resampler_describe, resampler_methods, NULL};

/* ---- Framer ------------------------------------------------------------- */
static const lm_class framer_class;

static wm_framer *check_framer(lua_State *L) { return lm_check(L, 1, &framer_class); }

/* framer{rate=16000, channels=1, ms=20, max_gap_ms=1000} */
static int framer_new(lua_State *L) {
  wm_framer *f;
  lua_Integer rate, ch, ms, gap;
  lm_check_table_or_none(L, 1);
  rate = lm_opt_int(L, 1, "rate", 16000, 1000, 192000);
  ch = lm_opt_int(L, 1, "channels", 1, 1, 8);
  ms = lm_opt_int(L, 1, "ms", 20, 1, 1000);
  gap = lm_opt_int(L, 1, "max_gap_ms", 1000, 0, 60000);
  f = lm_new(L, &framer_class);
  if (wm_framer_init(f, (unsigned)rate, (unsigned)ch, (unsigned)ms) == WM_EINVAL)
    return luaL_error(L, "framer: rate * ms must be a whole number of samples");
  if (!f->buf) return lm_nomem(L);
  f->max_gap = rate * gap / 1000;
  return 1;
}

/* fr:push(pcm, at_sample_or_nil, buf) -> frames written into buf */
static int framer_push(lua_State *L) {
  wm_framer *f = check_framer(L);
  size_t len;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &len);
  lua_Integer at = luaL_optinteger(L, 3, -1);
  wm_out *o = lm_buffer(L, 4);
  int n;
  if (!f->buf) return lm_closed(L, &framer_class);
  if (len % (2u * f->channels))
    return wxhw_fail(L, "input", "PCM chunk of %d bytes is not a whole number of samples",
                     (int)len);
  wm_out_reset(o);
  n = wm_framer_push(f, p, len, at, o);
  return lm_items(L, n, n, NULL);
}

static int framer_flush(lua_State *L) {
  wm_framer *f = check_framer(L);
  wm_out *o = lm_buffer(L, 2);
  int n;
  if (!f->buf) return lm_closed(L, &framer_class);
  wm_out_reset(o);
  n = wm_framer_flush(f, o);
  return lm_items(L, n, n, NULL);
}

static int framer_stats(lua_State *L) {
  wm_framer *f = check_framer(L);
  lua_createtable(L, 0, 4);
  lm_setint(L, "filled_samples", f->filled_samples);
  lm_setint(L, "dropped_samples", f->dropped_samples);
  lm_setint(L, "next", (uint64_t)f->next);
  lm_setint(L, "frame_bytes", (uint64_t)f->frame_samples * f->channels * 2);
  return 1;
}

static void framer_describe(lua_State *L, const void *p) {
  const wm_framer *f = p;
  lua_pushfstring(L, "%d Hz, %d samples/frame", (int)f->rate, (int)f->frame_samples);
}

static void framer_close(void *f) { wm_framer_free(f); }

static const luaL_Reg framer_methods[] = {
    {"push", framer_push}, {"flush", framer_flush}, {"stats", framer_stats}, {NULL, NULL}};
static const lm_class framer_class = {"wxhw.media.Framer", sizeof(wm_framer), framer_close,
                                      framer_describe,     framer_methods,     NULL};

/* ---- audio RTP ---------------------------------------------------------- */
enum { A_PCMU, A_PCMA, A_OPUS, A_AAC };
static const char *const apack_codecs[] = {"pcmu", "pcma", "opus", "aac", NULL};
typedef struct {
  wm_apack a;
  int codec;
  size_t mtu;
} apack;

static const lm_class apack_class;

static apack *check_apack(lua_State *L) { return lm_check(L, 1, &apack_class); }

/* audio_packetizer{codec="pcmu"|"pcma"|"opus"|"aac", pt=, ssrc=, seq=, ts=,
 *                  ptime_ms=20 (G.711), mtu=1200 (AAC)} */
static int apack_new(lua_State *L) {
  apack *p;
  int codec;
  luaL_checktype(L, 1, LUA_TTABLE);
  wxhw_getfield(L, 1, "codec");
  codec = luaL_checkoption(L, -1, NULL, apack_codecs);
  lua_pop(L, 1);
  p = lm_new(L, &apack_class);
  p->codec = codec;
  p->a.pt = (uint8_t)lm_opt_int(L, 1, "pt", codec == A_PCMU ? 0 : codec == A_PCMA ? 8 : 96, 0, 127);
  p->a.ssrc = (uint32_t)lm_opt_int(L, 1, "ssrc", lm_random32(), 0, 4294967295LL);
  p->a.seq = (uint16_t)lm_opt_int(L, 1, "seq", lm_random32() & 0xffff, 0, 65535);
  p->a.ts = (uint32_t)lm_opt_int(L, 1, "ts", lm_random32(), 0, 4294967295LL);
  p->a.ptime_samples = (size_t)lm_opt_int(L, 1, "ptime_ms", 20, 10, 120) * 8;
  p->mtu = (size_t)lm_opt_int(L, 1, "mtu", 1200, 17, 65535);
  p->a.talkspurt = 1;
  return 1;
}

/* ap:pack(data, buf) -> packets [, err]. G.711: any number of samples (the
 * remainder waits for the next call); Opus: one packet; AAC: ADTS frames. */
static int apack_pack(lua_State *L) {
  apack *p = check_apack(L);
  size_t len;
  const uint8_t *d = (const uint8_t *)luaL_checklstring(L, 2, &len);
  wm_out *o = lm_output(L, 3);
  const char *why = "Opus: malformed TOC";
  int r;
  if (p->codec == A_OPUS) r = wm_opus_pack(&p->a, d, len, o);
  else if (p->codec == A_AAC) r = wm_aac_pack(&p->a, d, len, p->mtu, o, &why);
  else r = wm_g711_pack(&p->a, d, len, o);
  return lm_items(L, r, (lua_Integer)o->n, r < 0 ? why : NULL);
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

static void apack_describe(lua_State *L, const void *self) {
  const apack *p = self;
  lua_pushfstring(L, "%s, pt %d", apack_codecs[p->codec], (int)p->a.pt);
}

static void apack_close(void *p) { wm_buf_free(&((apack *)p)->a.pending); }

static const luaL_Reg apack_methods[] = {
    {"pack", apack_pack}, {"talkspurt", apack_talkspurt}, {"state", apack_state}, {NULL, NULL}};
static const lm_class apack_class = {"wxhw.media.AudioPacketizer", sizeof(apack), apack_close,
                                     apack_describe,               apack_methods, NULL};

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
  wm_out *o = lm_output(L, 2);
  const char *why = NULL;
  int r = wm_aac_unpack(p, n, o, &why);
  return lm_items(L, r, (lua_Integer)o->n, why);
}

/* ---- family ------------------------------------------------------------- */
static const lm_class *const classes[] = {&resampler_class, &framer_class, &apack_class, NULL};
static const luaL_Reg functions[] = {{"g711_encode", l_g711_encode},
                                     {"g711_decode", l_g711_decode},
                                     {"resampler", resampler_new},
                                     {"framer", framer_new},
                                     {"audio_packetizer", apack_new},
                                     {"opus_samples", l_opus_samples},
                                     {"aac_unpack", l_aac_unpack},
                                     {NULL, NULL}};
const lm_family lm_audio_family = {classes, functions};
