/* wxhw.crypto: digests, encodings, keys, ciphers and certificates. */
#include <string.h>

#include <openssl/err.h>

#include "crypto.h"

#ifdef WXHW_TEST_HOOKS
/* For specs: every call must leave the thread's OpenSSL error queue empty
 * (in nginx a leftover error is logged as "ignoring stale global SSL error"). */
static int l_openssl_errors(lua_State *L) {
  lua_pushboolean(L, ERR_peek_error() != 0);
  return 1;
}
#endif

static int algs_gc(lua_State *L) {
  wxhw_crypto_algs *a = (wxhw_crypto_algs *)lua_touserdata(L, 1);
  int m, k;
  EVP_MD_free(a->sha1);
  EVP_MD_free(a->sha256);
  a->sha1 = a->sha256 = NULL;
  for (m = 0; m < 2; m++)
    for (k = 0; k < 3; k++) {
      EVP_CIPHER_free(a->aes[m][k]);
      a->aes[m][k] = NULL;
    }
  return 0;
}

static void push_algs(lua_State *L) {
  static const char *aes[2][3] = {{"AES-128-GCM", "AES-192-GCM", "AES-256-GCM"},
                                  {"AES-128-CBC", "AES-192-CBC", "AES-256-CBC"}};
  wxhw_crypto_algs *a = (wxhw_crypto_algs *)lua_newuserdatauv(L, sizeof *a, 0);
  int m, k;
  memset(a, 0, sizeof *a); /* born empty, so __gc is safe whatever fails below */
  lua_newtable(L);
  lua_pushcfunction(L, algs_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  a->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
  a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  for (m = 0; m < 2; m++)
    for (k = 0; k < 3; k++) a->aes[m][k] = EVP_CIPHER_fetch(NULL, aes[m][k], NULL);
  ERR_clear_error();
}

int wxhw_open_crypto(lua_State *L) {
#ifdef WXHW_TEST_HOOKS
  static const luaL_Reg hooks[] = {{"_openssl_error_pending", l_openssl_errors}, {NULL, NULL}};
#endif
  lua_newtable(L);
  push_algs(L);
  wxhw_crypto_digest_register(L);
  wxhw_crypto_pkey_register(L);
  wxhw_crypto_cipher_register(L);
  wxhw_crypto_x509_register(L);
  wxhw_crypto_msg_register(L);
#ifdef WXHW_TEST_HOOKS
  wxhw_crypto_setfuncs(L, hooks);
#endif
  lua_pop(L, 1);
  return 1;
}
