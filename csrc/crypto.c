/* wxhw.crypto: digests, encodings, keys, ciphers and certificates. */
#include "crypto.h"

int wxhw_open_crypto(lua_State *L) {
  lua_newtable(L);
  wxhw_crypto_digest_register(L);
  wxhw_crypto_pkey_register(L);
  wxhw_crypto_cipher_register(L);
  wxhw_crypto_x509_register(L);
  return 1;
}
