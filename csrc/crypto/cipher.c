/* AES-GCM (WeChat Pay resources and certificates) and AES-CBC without padding
 * (WXBizMsgCrypt applies its own 32-byte PKCS#7 on top). */
#include <string.h>

#include <openssl/err.h>

#include "crypto.h"

#define GCM_TAG_LEN 16

static const EVP_CIPHER *aes_cipher(lua_State *L, int cbc, size_t keylen) {
  int k = keylen == 16 ? 0 : keylen == 24 ? 1 : keylen == 32 ? 2 : -1;
  const EVP_CIPHER *fetched;
  if (k < 0) return NULL;
  if ((fetched = WXHW_CRYPTO_ALGS(L)->aes[cbc][k]) != NULL) return fetched;
  switch (k) {
    case 0: return cbc ? EVP_aes_128_cbc() : EVP_aes_128_gcm();
    case 1: return cbc ? EVP_aes_192_cbc() : EVP_aes_192_gcm();
    default: return cbc ? EVP_aes_256_cbc() : EVP_aes_256_gcm();
  }
}

#define gcm_cipher(n) aes_cipher(L, 0, (n))
#define cbc_cipher(n) aes_cipher(L, 1, (n))

/* aes_gcm_encrypt(key, nonce, aad, plain) --> ciphertext..tag */
static int l_aes_gcm_encrypt(lua_State *L) {
  size_t klen, nlen, alen, plen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *nonce = luaL_checklstring(L, 2, &nlen);
  const char *aad = luaL_optlstring(L, 3, "", &alen);
  const char *plain = luaL_checklstring(L, 4, &plen);
  const EVP_CIPHER *cipher = gcm_cipher(klen);
  EVP_CIPHER_CTX *ctx;
  luaL_Buffer b;
  unsigned char *out;
  int len = 0, fin = 0, ok;
  if (!cipher) return wxhw_fail(L, "crypto", "AES-GCM key must be 16, 24 or 32 bytes, got %zu", klen);
  if (nlen == 0) return wxhw_fail(L, "crypto", "AES-GCM nonce must not be empty");
  if (plen > 0x7fffffff - GCM_TAG_LEN || alen > 0x7fffffff) return wxhw_fail(L, "crypto", "AES-GCM input too large");
  if (!(ctx = EVP_CIPHER_CTX_new())) return wxhw_raise_ssl(L, "out of memory");
  out = (unsigned char *)luaL_buffinitsize(L, &b, plen + GCM_TAG_LEN);
  ok = EVP_EncryptInit_ex(ctx, cipher, NULL, NULL, NULL) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)nlen, NULL) == 1 &&
       EVP_EncryptInit_ex(ctx, NULL, NULL, (const unsigned char *)key, (const unsigned char *)nonce) == 1 &&
       (alen == 0 || EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)alen) == 1) &&
       EVP_EncryptUpdate(ctx, out, &len, (const unsigned char *)plain, (int)plen) == 1 &&
       EVP_EncryptFinal_ex(ctx, out + len, &fin) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, out + len + fin) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    luaL_pushresultsize(&b, 0);
    return wxhw_raise_ssl(L, "AES-GCM encryption failed");
  }
  luaL_pushresultsize(&b, (size_t)(len + fin) + GCM_TAG_LEN);
  return 1;
}

/* aes_gcm_decrypt(key, nonce, aad, ciphertext..tag) --> plain | nil, err */
static int l_aes_gcm_decrypt(lua_State *L) {
  size_t klen, nlen, alen, clen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *nonce = luaL_checklstring(L, 2, &nlen);
  const char *aad = luaL_optlstring(L, 3, "", &alen);
  const char *ct = luaL_checklstring(L, 4, &clen);
  const EVP_CIPHER *cipher = gcm_cipher(klen);
  EVP_CIPHER_CTX *ctx;
  luaL_Buffer b;
  unsigned char *out, tag[GCM_TAG_LEN];
  int len = 0, fin = 0, ok;
  if (!cipher) return wxhw_fail(L, "crypto", "AES-GCM key must be 16, 24 or 32 bytes, got %zu", klen);
  if (nlen == 0) return wxhw_fail(L, "crypto", "AES-GCM nonce must not be empty");
  if (clen < GCM_TAG_LEN) return wxhw_fail(L, "crypto", "AES-GCM ciphertext shorter than its 16-byte tag");
  if (clen > 0x7fffffff || alen > 0x7fffffff) return wxhw_fail(L, "crypto", "AES-GCM input too large");
  clen -= GCM_TAG_LEN;
  memcpy(tag, ct + clen, GCM_TAG_LEN);
  if (!(ctx = EVP_CIPHER_CTX_new())) return wxhw_raise_ssl(L, "out of memory");
  out = (unsigned char *)luaL_buffinitsize(L, &b, clen);
  ok = EVP_DecryptInit_ex(ctx, cipher, NULL, NULL, NULL) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)nlen, NULL) == 1 &&
       EVP_DecryptInit_ex(ctx, NULL, NULL, (const unsigned char *)key, (const unsigned char *)nonce) == 1 &&
       (alen == 0 || EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)alen) == 1) &&
       EVP_DecryptUpdate(ctx, out, &len, (const unsigned char *)ct, (int)clen) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) == 1 &&
       EVP_DecryptFinal_ex(ctx, out + len, &fin) == 1;
  EVP_CIPHER_CTX_free(ctx);
  ERR_clear_error();
  if (!ok) {
    OPENSSL_cleanse(out, clen);
    luaL_pushresultsize(&b, 0);
    lua_pop(L, 1);
    return wxhw_fail(L, "crypto", "AES-GCM authentication failed (wrong key, nonce or associated data, or tampered ciphertext)");
  }
  luaL_pushresultsize(&b, (size_t)(len + fin));
  return 1;
}

static int cbc(lua_State *L, int encrypt) {
  size_t klen, ivlen, n;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *iv = luaL_checklstring(L, 2, &ivlen);
  const char *in = luaL_checklstring(L, 3, &n);
  const EVP_CIPHER *cipher = cbc_cipher(klen);
  EVP_CIPHER_CTX *ctx;
  luaL_Buffer b;
  unsigned char *out;
  int len = 0, fin = 0, ok;
  if (!cipher) return wxhw_fail(L, "crypto", "AES-CBC key must be 16, 24 or 32 bytes, got %zu", klen);
  if (ivlen != 16) return wxhw_fail(L, "crypto", "AES-CBC IV must be 16 bytes, got %zu", ivlen);
  if (n % 16 != 0) return wxhw_fail(L, "crypto", "AES-CBC data must be a multiple of 16 bytes, got %zu", n);
  if (n > 0x7fffffff) return wxhw_fail(L, "crypto", "AES-CBC input too large");
  if (!(ctx = EVP_CIPHER_CTX_new())) return wxhw_raise_ssl(L, "out of memory");
  out = (unsigned char *)luaL_buffinitsize(L, &b, n + 16);
  ok = EVP_CipherInit_ex(ctx, cipher, NULL, (const unsigned char *)key, (const unsigned char *)iv, encrypt) == 1 &&
       EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
       EVP_CipherUpdate(ctx, out, &len, (const unsigned char *)in, (int)n) == 1 &&
       EVP_CipherFinal_ex(ctx, out + len, &fin) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    luaL_pushresultsize(&b, 0);
    lua_pop(L, 1);
    return wxhw_fail_ssl(L, "AES-CBC %s failed", encrypt ? "encryption" : "decryption");
  }
  luaL_pushresultsize(&b, (size_t)(len + fin));
  return 1;
}

static int l_aes_cbc_encrypt(lua_State *L) { return cbc(L, 1); }
static int l_aes_cbc_decrypt(lua_State *L) { return cbc(L, 0); }

void wxhw_crypto_cipher_register(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"aes_gcm_encrypt", l_aes_gcm_encrypt},
      {"aes_gcm_decrypt", l_aes_gcm_decrypt},
      {"aes_cbc_encrypt", l_aes_cbc_encrypt},
      {"aes_cbc_decrypt", l_aes_cbc_decrypt},
      {NULL, NULL},
  };
  wxhw_crypto_setfuncs(L, funcs);
}
