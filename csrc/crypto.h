/* Internal interface between the crypto files: each adds its functions to the
 * wxhw.crypto table at the top of the stack. */
#ifndef WXHW_CRYPTO_H
#define WXHW_CRYPTO_H

#include <openssl/evp.h>
#include "wxhw.h"

#pragma GCC visibility push(hidden)

#define KEY_CLASS "wxhw.Key"
#define PUBKEY_CLASS "wxhw.PublicKey"

void wxhw_crypto_digest_register(lua_State *L);
void wxhw_crypto_pkey_register(lua_State *L);
void wxhw_crypto_cipher_register(lua_State *L);
void wxhw_crypto_x509_register(lua_State *L);

/* Wraps an owned EVP_PKEY (public part only is used) in a wxhw.PublicKey;
 * takes ownership of pkey even on error. */
void wxhw_push_public_key(lua_State *L, EVP_PKEY *pkey);

#pragma GCC visibility pop

#endif
