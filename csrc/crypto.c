/* wxhw.crypto: digests, encodings, keys, ciphers and certificates. */
#include <openssl/err.h>

#include "crypto.h"

/* For specs: every call must leave the thread's OpenSSL error queue empty
 * (in nginx a leftover error is logged as "ignoring stale global SSL error"). */
static int l_openssl_errors(lua_State *L) {
  lua_pushboolean(L, ERR_peek_error() != 0);
  return 1;
}

int wxhw_open_crypto(lua_State *L) {
  lua_newtable(L);
  wxhw_crypto_digest_register(L);
  wxhw_crypto_pkey_register(L);
  wxhw_crypto_cipher_register(L);
  wxhw_crypto_x509_register(L);
  lua_pushcfunction(L, l_openssl_errors);
  lua_setfield(L, -2, "_openssl_error_pending");
  return 1;
}
