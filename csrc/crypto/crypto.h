/* Internal interface between the crypto files: each adds its functions to the
 * wxhw.crypto table at the top of the stack. */
#ifndef WXHW_CRYPTO_H
#define WXHW_CRYPTO_H

#include <openssl/evp.h>
#include "wxhw.h"

#pragma GCC visibility push(hidden)

#define KEY_CLASS "wxhw.Key"
#define PUBKEY_CLASS "wxhw.PublicKey"

/* Algorithms fetched once per Lua state: OpenSSL 3 otherwise looks an
 * implementation up by name on every one-shot call (SHA1(), EVP_aes_*() in an
 * Init), which costs more than hashing or encrypting a WeChat push. Kept in a
 * userdata that is upvalue 1 of every wxhw.crypto function and frees them in
 * __gc, so nothing outlives the state or an unload of core.so. A NULL entry
 * (unusual provider set-up) falls back to the implicit lookup. */
typedef struct {
  EVP_MD *sha1, *sha256;
  EVP_CIPHER *aes[2][3]; /* [gcm, cbc][128, 192, 256] */
} wxhw_crypto_algs;

#define WXHW_CRYPTO_ALGS(L) ((const wxhw_crypto_algs *)lua_touserdata((L), lua_upvalueindex(1)))

/* With the module table at -2 and the algs userdata at -1, adds funcs to the
 * module with the userdata as their upvalue; leaves the stack as it was.
 * Inline so that the files registering functions call nothing back in
 * crypto.c: crypto.c calls each file's register function, never the reverse. */
static inline void wxhw_crypto_setfuncs(lua_State *L, const luaL_Reg *funcs) {
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}

/* Each file registers its functions with the module table at -2 and the algs
 * userdata at -1 (and leaves them there). */
void wxhw_crypto_digest_register(lua_State *L);
void wxhw_crypto_pkey_register(lua_State *L);
void wxhw_crypto_cipher_register(lua_State *L);
void wxhw_crypto_x509_register(lua_State *L);
void wxhw_crypto_msg_register(lua_State *L);

/* Wraps an owned EVP_PKEY (public part only is used) in a wxhw.PublicKey;
 * takes ownership of pkey even on error. */
void wxhw_push_public_key(lua_State *L, EVP_PKEY *pkey);

#pragma GCC visibility pop

#endif
