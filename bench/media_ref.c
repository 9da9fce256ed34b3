/* Reference measurements for bench/media, built by the bench script only:
 * memcpy of the same frames into a reused buffer, memchr over the same
 * buffer. Timed in C with CLOCK_MONOTONIC. Not part of wxhw. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* memcpy_frames(frames) -> seconds: copy every string of the array into one
 * reused destination, as a packetiser writes every frame into a reused buffer */
static int memcpy_frames(lua_State *L) {
  size_t i, n = lua_rawlen(L, 1), max = 0, len;
  unsigned char *dst;
  volatile unsigned sink = 0;
  double t0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, (int)i);
    lua_tolstring(L, -1, &len);
    if (len > max) max = len;
    lua_pop(L, 1);
  }
  dst = malloc(max + 64);
  t0 = now();
  for (i = 1; i <= n; i++) {
    const char *s;
    lua_rawgeti(L, 1, (int)i);
    s = lua_tolstring(L, -1, &len);
    memcpy(dst, s, len);
    sink += dst[len / 2];
    lua_pop(L, 1);
  }
  lua_pushnumber(L, now() - t0);
  free(dst);
  (void)sink;
  return 1;
}

/* memchr_count(s) -> seconds, hits: every 0x01 in s */
static int memchr_count(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len), *p = s, *end = s + len;
  lua_Integer hits = 0;
  double t0 = now();
  while (p < end && (p = memchr(p, 1, (size_t)(end - p))) != NULL) hits++, p++;
  lua_pushnumber(L, now() - t0);
  lua_pushinteger(L, hits);
  return 2;
}

/* gen_frames(total_bytes, sps, pps, idr_head, p_head, seed) -> array of
 * Annex-B access units with unique pseudo-random slice data: SPS+PPS+IDR
 * (96 KiB) every 30 frames, P slices of 16-48 KiB otherwise. Real slice
 * headers (from an x264 clip) keep ffmpeg's parser on track; the random body
 * never holds 00 00 (so no start code or emulation issue). */
static uint64_t xs(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  return *s = x;
}

static int gen_frames(lua_State *L) {
  lua_Integer total = luaL_checkinteger(L, 1), made = 0;
  size_t sl, pl, il, hl;
  const char *sps = luaL_checklstring(L, 2, &sl), *pps = luaL_checklstring(L, 3, &pl);
  const char *idr = luaL_checklstring(L, 4, &il), *ph = luaL_checklstring(L, 5, &hl);
  uint64_t seed = (uint64_t)luaL_checkinteger(L, 6) | 1;
  int k = 0;
  lua_newtable(L);
  while (made < total) {
    int key = k % 30 == 0;
    size_t body = key ? 96 * 1024 : 16 * 1024 + (size_t)(xs(&seed) % (32 * 1024));
    size_t len = (key ? 4 + sl + 4 + pl : 0) + 4 + (key ? il : hl) + body, i, o = 0;
    unsigned char *b = malloc(len);
    if (key) {
      memcpy(b, "\0\0\0\1", 4), memcpy(b + 4, sps, sl), o = 4 + sl;
      memcpy(b + o, "\0\0\0\1", 4), memcpy(b + o + 4, pps, pl), o += 4 + pl;
    }
    memcpy(b + o, "\0\0\0\1", 4), o += 4;
    memcpy(b + o, key ? idr : ph, key ? il : hl), o += key ? il : hl;
    for (i = 0; i < body; i += 8) {
      uint64_t r = xs(&seed);
      size_t j;
      for (j = 0; j < 8 && i + j < body; j++) b[o + i + j] = (unsigned char)(r >> (8 * j));
    }
    for (i = o; i < len; i++)
      if (b[i] == 0 && (i == o || b[i - 1] == 0)) b[i] = 0x80;
    b[len - 1] |= 1; /* never end in 00 */
    lua_pushlstring(L, (const char *)b, len);
    lua_rawseti(L, -2, ++k);
    free(b);
    made += (lua_Integer)len;
  }
  return 1;
}

int luaopen_media_ref(lua_State *L);
int luaopen_media_ref(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, memcpy_frames);
  lua_setfield(L, -2, "memcpy_frames");
  lua_pushcfunction(L, gen_frames);
  lua_setfield(L, -2, "gen_frames");
  lua_pushcfunction(L, memchr_count);
  lua_setfield(L, -2, "memchr_count");
  return 1;
}
