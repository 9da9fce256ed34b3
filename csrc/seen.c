/* wxhw.Seen: a Bloom filter over strings, the first pass of duplicate
 * detection in bulk provisioning. A few bits per key instead of a Lua table
 * entry per key keeps memory flat for millions of device ids; the caller
 * checks the (rare) "maybe seen" answers exactly. The bits live inside the
 * userdata, so there is nothing to free. */
#include <stdint.h>
#include <string.h>

#include "wxhw.h"

#define SEEN_CLASS "wxhw.Seen"
#define MIN_BITS ((uint64_t)1 << 10)
#define MAX_BITS ((uint64_t)1 << 34)

typedef struct {
  uint64_t mask; /* bits - 1; bits is a power of two */
  int k;
  uint64_t added;
  unsigned char bits[1];
} seen_t;

static uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

static void hash2(const char *s, size_t n, uint64_t *h1, uint64_t *h2) {
  uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
  size_t i;
  for (i = 0; i < n; i++) {
    a = (a ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    b = (b + (unsigned char)s[i]) * 0x9e3779b97f4a7c15ULL;
  }
  *h1 = mix64(a ^ (uint64_t)n);
  *h2 = mix64(b ^ *h1) | 1;
}

/* seen.new(bits [, k]) -> wxhw.Seen; bits is rounded up to a power of two. */
static int l_new(lua_State *L) {
  lua_Number want = luaL_checknumber(L, 1);
  lua_Integer k = luaL_optinteger(L, 2, 4);
  uint64_t bits = MIN_BITS;
  seen_t *s;
  luaL_argcheck(L, want > 0 && want <= (lua_Number)MAX_BITS, 1, "bits must be in 1 .. 2^34");
  luaL_argcheck(L, k >= 1 && k <= 16, 2, "k must be in 1 .. 16");
  while ((lua_Number)bits < want) bits <<= 1;
  s = lua_newuserdatauv(L, sizeof(seen_t) + (size_t)(bits / 8), 0);
  s->mask = bits - 1;
  s->k = (int)k;
  s->added = 0;
  memset(s->bits, 0, (size_t)(bits / 8) + 1);
  luaL_setmetatable(L, SEEN_CLASS);
  return 1;
}

static int probe(lua_State *L, int set) {
  seen_t *s = luaL_checkudata(L, 1, SEEN_CLASS);
  size_t n;
  const char *key = luaL_checklstring(L, 2, &n);
  uint64_t h1, h2;
  int i, all = 1;
  hash2(key, n, &h1, &h2);
  for (i = 0; i < s->k; i++) {
    uint64_t bit = (h1 + (uint64_t)i * h2) & s->mask;
    unsigned char m = (unsigned char)(1u << (bit & 7));
    if (!(s->bits[bit >> 3] & m)) {
      all = 0;
      if (set) s->bits[bit >> 3] |= m;
    }
  }
  if (set && !all) s->added++;
  lua_pushboolean(L, all);
  return 1;
}

/* seen:add(key) -> true if the key may have been added before (then it was
 * probably a duplicate; check exactly), false if it certainly was not. */
static int l_add(lua_State *L) { return probe(L, 1); }

/* seen:test(key) -> the same answer without adding. */
static int l_test(lua_State *L) { return probe(L, 0); }

static int l_bits(lua_State *L) {
  seen_t *s = luaL_checkudata(L, 1, SEEN_CLASS);
  lua_pushnumber(L, (lua_Number)(s->mask + 1));
  return 1;
}

static int l_tostring(lua_State *L) {
  seen_t *s = luaL_checkudata(L, 1, SEEN_CLASS);
  lua_pushfstring(L, SEEN_CLASS " (%d KiB, k=%d, %d keys)", (int)((s->mask + 1) / 8192), s->k,
                  (int)s->added);
  return 1;
}

static int l_noop(lua_State *L) {
  luaL_checkudata(L, 1, SEEN_CLASS);
  return 0;
}

int wxhw_open_seen(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"add", l_add}, {"test", l_test}, {"bits", l_bits}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__tostring", l_tostring}, {"__gc", l_noop}, {"__close", l_noop}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"new", l_new}, {NULL, NULL}};
  wxhw_newclass(L, SEEN_CLASS, methods, meta);
  luaL_newlib(L, funcs);
  return 1;
}
