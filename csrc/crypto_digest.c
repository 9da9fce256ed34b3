/* Digests, HMAC, hex, strict base64 and randomness. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "crypto.h"

static int digest(lua_State *L, int which, const char *name) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  const wxhw_crypto_algs *a = WXHW_CRYPTO_ALGS(L);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const EVP_MD *type = which == 0 ? (a->sha1 ? a->sha1 : EVP_sha1()) : (a->sha256 ? a->sha256 : EVP_sha256());
  if (EVP_Digest(s, n, md, &len, type, NULL) != 1) return wxhw_raise_ssl(L, "%s failed", name);
  lua_pushlstring(L, (const char *)md, len);
  return 1;
}

static int l_sha1(lua_State *L) { return digest(L, 0, "sha1"); }
static int l_sha256(lua_State *L) { return digest(L, 1, "sha256"); }

static int l_hmac_sha256(lua_State *L) {
  size_t klen, n;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *s = luaL_checklstring(L, 2, &n);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)s, n, md, &mdlen))
    return wxhw_raise_ssl(L, "hmac_sha256 failed");
  lua_pushlstring(L, (const char *)md, mdlen);
  return 1;
}

static int l_hex(lua_State *L) {
  static const char digits[] = "0123456789abcdef";
  size_t n, i;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n * 2);
  for (i = 0; i < n; i++) {
    out[2 * i] = digits[s[i] >> 4];
    out[2 * i + 1] = digits[s[i] & 15];
  }
  luaL_pushresultsize(&b, n * 2);
  return 1;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int l_base64_encode(lua_State *L) {
  size_t n, i, o = 0;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  size_t outlen = 4 * ((n + 2) / 3);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, outlen);
  for (i = 0; i + 2 < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
    out[o++] = b64chars[v >> 18];
    out[o++] = b64chars[(v >> 12) & 63];
    out[o++] = b64chars[(v >> 6) & 63];
    out[o++] = b64chars[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
    out[o++] = b64chars[v >> 18];
    out[o++] = b64chars[(v >> 12) & 63];
    out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  luaL_pushresultsize(&b, o);
  return 1;
}

/* 0..63 for the alphabet, 64 for '=', 255 for anything else. */
static const unsigned char b64table[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255,  64, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

/* Strict RFC 4648: padded, no whitespace, no stray characters. */
static int l_base64_decode(lua_State *L) {
  size_t n, i, o = 0, pad = 0, bad = (size_t)-1;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *out;
  if (n % 4 != 0) return wxhw_fail(L, "input", "invalid base64: length %zu is not a multiple of 4", n);
  if (n >= 1 && s[n - 1] == '=') pad++;
  if (n >= 2 && s[n - 2] == '=') pad++;
  out = luaL_buffinitsize(L, &b, n / 4 * 3);
  for (i = 0; i < n; i += 4) {
    unsigned a = b64table[s[i]], c = b64table[s[i + 1]], d = b64table[s[i + 2]], e = b64table[s[i + 3]];
    if ((a | c | d | e) > 63) { /* padding (only at the very end) or a bad byte */
      size_t k, limit = (i + 4 == n) ? 4 - pad : 4;
      for (k = 0; k < 4 && bad == (size_t)-1; k++)
        if (b64table[s[i + k]] > 63 && (k < limit || s[i + k] != '=')) bad = i + k;
      if (bad != (size_t)-1) break;
      a &= 63, c &= 63, d &= 63, e &= 63;
    }
    unsigned triple = a << 18 | c << 12 | d << 6 | e;
    out[o++] = (char)(triple >> 16);
    out[o++] = (char)(triple >> 8);
    out[o++] = (char)triple;
  }
  if (bad != (size_t)-1) {
    luaL_pushresultsize(&b, 0);
    lua_pop(L, 1);
    return wxhw_fail(L, "input", "invalid base64: bad character at offset %zu", bad);
  }
  luaL_pushresultsize(&b, o - pad);
  return 1;
}

static int l_random_bytes(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_Buffer b;
  unsigned char *out;
  luaL_argcheck(L, n >= 0 && n <= (1 << 20), 1, "must be between 0 and 1048576");
  out = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)n);
  if (n > 0 && RAND_bytes(out, (int)n) != 1) return wxhw_raise_ssl(L, "random_bytes: RAND_bytes failed");
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* Uniform over [0-9A-Za-z] by rejection sampling (62 does not divide 256). */
static int l_nonce(lua_State *L) {
  static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  lua_Integer n = luaL_optinteger(L, 1, 32);
  unsigned char rnd[64];
  luaL_Buffer b;
  char *out;
  size_t o = 0;
  luaL_argcheck(L, n >= 1 && n <= 4096, 1, "must be between 1 and 4096");
  out = luaL_buffinitsize(L, &b, (size_t)n);
  while (o < (size_t)n) {
    size_t i;
    if (RAND_bytes(rnd, sizeof rnd) != 1) return wxhw_raise_ssl(L, "nonce: RAND_bytes failed");
    for (i = 0; i < sizeof rnd && o < (size_t)n; i++)
      if (rnd[i] < 248) out[o++] = alphabet[rnd[i] % 62];
  }
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

static int l_constant_time_equal(lua_State *L) {
  size_t an, bn;
  const char *a = luaL_checklstring(L, 1, &an);
  const char *b = luaL_checklstring(L, 2, &bn);
  lua_pushboolean(L, an == bn && CRYPTO_memcmp(a, b, an) == 0);
  return 1;
}

void wxhw_crypto_digest_register(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"sha1", l_sha1},
      {"sha256", l_sha256},
      {"hmac_sha256", l_hmac_sha256},
      {"hex", l_hex},
      {"base64_encode", l_base64_encode},
      {"base64_decode", l_base64_decode},
      {"random_bytes", l_random_bytes},
      {"nonce", l_nonce},
      {"constant_time_equal", l_constant_time_equal},
      {NULL, NULL},
  };
  wxhw_crypto_setfuncs(L, funcs);
}
