/* Digests, HMAC, hex, strict base64 and randomness. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "crypto.h"
#include "wire.h"

static int digest(lua_State *L, int which, const char *name) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  const wxhw_crypto_algs *a = WXHW_CRYPTO_ALGS(L);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const EVP_MD *type = which == 0 ? (a->sha1 ? a->sha1 : EVP_sha1())
                       : which == 1 ? (a->sha256 ? a->sha256 : EVP_sha256())
                                    : EVP_md5();
  if (EVP_Digest(s, n, md, &len, type, NULL) != 1) return wxhw_raise_ssl(L, "%s failed", name);
  lua_pushlstring(L, (const char *)md, len);
  return 1;
}

static int l_sha1(lua_State *L) { return digest(L, 0, "sha1"); }
static int l_sha256(lua_State *L) { return digest(L, 1, "sha256"); }
/* Not for security: WeCom's verify_device push names a device by the MD5 of its SN. */
static int l_md5(lua_State *L) { return digest(L, 2, "md5"); }

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

static int l_base64_encode(lua_State *L) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, WXHW_B64_ENCODED_LEN(n));
  luaL_pushresultsize(&b, wxhw_b64_encode(s, n, out));
  return 1;
}

/* Strict RFC 4648: padded, no whitespace, no stray characters. */
static int l_base64_decode(lua_State *L) {
  size_t n, o = 0, bad = 0;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  unsigned char *out;
  if (n % 4 != 0) return wxhw_fail(L, "input", "invalid base64: length %zu is not a multiple of 4", n);
  out = (unsigned char *)luaL_buffinitsize(L, &b, n / 4 * 3);
  if (wxhw_b64_decode(s, n, out, &o, &bad) != 0) {
    luaL_pushresultsize(&b, 0);
    lua_pop(L, 1);
    return wxhw_fail(L, "input", "invalid base64: bad character at offset %zu", bad);
  }
  luaL_pushresultsize(&b, o);
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

/* Uniform over [0-9A-Za-z] (rejection sampling in wxhw_alnum_from_random). */
static int l_nonce(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 1, 32);
  unsigned char rnd[64];
  luaL_Buffer b;
  char *out;
  size_t o = 0;
  luaL_argcheck(L, n >= 1 && n <= 4096, 1, "must be between 1 and 4096");
  out = luaL_buffinitsize(L, &b, (size_t)n);
  while (o < (size_t)n) {
    if (RAND_bytes(rnd, sizeof rnd) != 1) return wxhw_raise_ssl(L, "nonce: RAND_bytes failed");
    o += wxhw_alnum_from_random(rnd, sizeof rnd, out + o, (size_t)n - o);
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
      {"md5", l_md5},
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
