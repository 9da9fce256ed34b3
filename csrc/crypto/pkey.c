/* Private and public keys: RSA (PKCS#1 v1.5 / OAEP) and EC P-256 (ECDSA).
 * Keys are parsed once into userdata; the signing/verifying context is set up
 * once per key so each call costs one digest and one operation. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "crypto.h"

typedef struct {
  EVP_PKEY *pkey;
  EVP_PKEY_CTX *ctx; /* sign (Key) or verify (PublicKey) context, made lazily */
} pkey_box;

static const char *type_name(EVP_PKEY *pkey) {
  return EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA ? "RSA" : "EC P-256";
}

/* Born closed, like Lua's file handles: the userdata exists with NULL
 * resources before anything is acquired. */
static pkey_box *new_box(lua_State *L, const char *cls) {
  pkey_box *box = (pkey_box *)lua_newuserdatauv(L, sizeof *box, 0);
  box->pkey = NULL;
  box->ctx = NULL;
  luaL_setmetatable(L, cls);
  return box;
}

static pkey_box *check_box(lua_State *L, int idx, const char *cls) {
  pkey_box *box = (pkey_box *)luaL_checkudata(L, idx, cls);
  if (box->pkey == NULL) luaL_error(L, "%s is closed", cls);
  return box;
}

static int box_close(lua_State *L) {
  pkey_box *box = (pkey_box *)lua_touserdata(L, 1);
  if (box) {
    EVP_PKEY_CTX_free(box->ctx);
    EVP_PKEY_free(box->pkey);
    box->ctx = NULL;
    box->pkey = NULL;
  }
  return 0;
}

/* Only RSA and EC on P-256 are accepted: that is what WeChat Pay and WMPF use. */
static const char *unsupported(EVP_PKEY *pkey) {
  int id = EVP_PKEY_get_base_id(pkey);
  if (id == EVP_PKEY_RSA) return NULL;
  if (id == EVP_PKEY_EC) {
    char group[64];
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) &&
        strcmp(group, "prime256v1") == 0)
      return NULL;
    return "EC key on a curve other than P-256 (prime256v1)";
  }
  return "unsupported key type (RSA or EC P-256 required)";
}

static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1; /* never prompt on a terminal for an encrypted key */
}

static int l_private_key(lua_State *L) {
  size_t n;
  const char *pem = luaL_checklstring(L, 1, &n);
  pkey_box *box = new_box(L, KEY_CLASS);
  BIO *bio = BIO_new_mem_buf(pem, (int)n);
  const char *why;
  if (!bio) return wxhw_raise_ssl(L, "out of memory");
  box->pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
  BIO_free(bio);
  if (!box->pkey) {
    if (strstr(pem, "ENCRYPTED") != NULL)
      return wxhw_fail_ssl(L, "encrypted PEM private keys are not supported; decrypt it first");
    return wxhw_fail_ssl(L, "not a PEM private key (expected PKCS#1, PKCS#8 or SEC1 PEM)");
  }
  ERR_clear_error();
  if ((why = unsupported(box->pkey)) != NULL) {
    EVP_PKEY_free(box->pkey);
    box->pkey = NULL;
    return wxhw_fail(L, "crypto", "%s", why);
  }
  return 1;
}

void wxhw_push_public_key(lua_State *L, EVP_PKEY *pkey) {
  pkey_box *box = new_box(L, PUBKEY_CLASS);
  box->pkey = pkey;
}

static EVP_PKEY *decode_public(const char *pem, size_t n) {
  EVP_PKEY *pkey = NULL;
  const unsigned char *data = (const unsigned char *)pem;
  size_t len = n;
  /* SubjectPublicKeyInfo and PKCS#1 "RSA PUBLIC KEY" both decode here. */
  OSSL_DECODER_CTX *dctx =
      OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
  if (dctx) {
    if (!OSSL_DECODER_from_data(dctx, &data, &len)) pkey = NULL;
    OSSL_DECODER_CTX_free(dctx);
  }
  if (!pkey) { /* a certificate: take its key */
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
    if (cert) pkey = X509_get_pubkey(cert);
    X509_free(cert);
    BIO_free(bio);
  }
  ERR_clear_error();
  return pkey;
}

static int l_public_key(lua_State *L) {
  size_t n;
  const char *pem = luaL_checklstring(L, 1, &n);
  EVP_PKEY *pkey = decode_public(pem, n);
  const char *why;
  if (!pkey) return wxhw_fail(L, "crypto", "not a PEM public key or certificate");
  if ((why = unsupported(pkey)) != NULL) {
    EVP_PKEY_free(pkey);
    return wxhw_fail(L, "crypto", "%s", why);
  }
  wxhw_push_public_key(L, pkey);
  return 1;
}

static int l_generate_ec_key(lua_State *L) {
  pkey_box *box = new_box(L, KEY_CLASS);
  box->pkey = EVP_EC_gen("P-256");
  if (!box->pkey) return wxhw_raise_ssl(L, "generate_ec_key: key generation failed");
  return 1;
}

static int l_generate_rsa_key(lua_State *L) {
  lua_Integer bits = luaL_optinteger(L, 1, 2048);
  pkey_box *box;
  luaL_argcheck(L, bits >= 2048 && bits <= 8192, 1, "RSA key size must be 2048..8192 bits");
  box = new_box(L, KEY_CLASS);
  box->pkey = EVP_RSA_gen((unsigned int)bits);
  if (!box->pkey) return wxhw_raise_ssl(L, "generate_rsa_key: key generation failed");
  return 1;
}

static int setup_ctx(pkey_box *box, int sign) {
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, box->pkey, NULL);
  if (!ctx) return 0;
  if ((sign ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx)) <= 0 ||
      (EVP_PKEY_get_base_id(box->pkey) == EVP_PKEY_RSA &&
       EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0) ||
      EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) <= 0) {
    EVP_PKEY_CTX_free(ctx);
    return 0;
  }
  box->ctx = ctx;
  return 1;
}

/* RSA: PKCS#1 v1.5 SHA-256; EC: ECDSA SHA-256, DER. */
static int key_sign(lua_State *L) {
  pkey_box *box = check_box(L, 1, KEY_CLASS);
  size_t n, siglen;
  const char *msg = luaL_checklstring(L, 2, &n);
  unsigned char md[SHA256_DIGEST_LENGTH];
  luaL_Buffer b;
  unsigned char *sig;
  if (!box->ctx && !setup_ctx(box, 1)) return wxhw_raise_ssl(L, "sign: cannot set up signing");
  SHA256((const unsigned char *)msg, n, md);
  siglen = (size_t)EVP_PKEY_get_size(box->pkey);
  sig = (unsigned char *)luaL_buffinitsize(L, &b, siglen);
  if (EVP_PKEY_sign(box->ctx, sig, &siglen, md, sizeof md) <= 0) {
    luaL_pushresultsize(&b, 0);
    return wxhw_raise_ssl(L, "sign failed");
  }
  luaL_pushresultsize(&b, siglen);
  return 1;
}

static int pub_verify(lua_State *L) {
  pkey_box *box = check_box(L, 1, PUBKEY_CLASS);
  size_t n, siglen;
  const char *msg = luaL_checklstring(L, 2, &n);
  const char *sig = luaL_checklstring(L, 3, &siglen);
  unsigned char md[SHA256_DIGEST_LENGTH];
  int ok;
  if (!box->ctx && !setup_ctx(box, 0)) return wxhw_raise_ssl(L, "verify: cannot set up verification");
  SHA256((const unsigned char *)msg, n, md);
  ok = EVP_PKEY_verify(box->ctx, (const unsigned char *)sig, siglen, md, sizeof md) == 1;
  ERR_clear_error(); /* a bad signature is an answer, not an error */
  lua_pushboolean(L, ok);
  return 1;
}

static EVP_PKEY_CTX *oaep_ctx(EVP_PKEY *pkey, int encrypt) {
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
  if (!ctx) return NULL;
  if ((encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) <= 0 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha1()) <= 0 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha1()) <= 0) {
    EVP_PKEY_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* RSAES-OAEP, SHA-1 and MGF1-SHA-1, empty label: WeChat Pay sensitive fields. */
static int oaep(lua_State *L, const char *cls, int encrypt) {
  pkey_box *box = check_box(L, 1, cls);
  size_t n, outlen = 0;
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 2, &n);
  EVP_PKEY_CTX *ctx;
  luaL_Buffer b;
  unsigned char *out;
  int ok;
  if (EVP_PKEY_get_base_id(box->pkey) != EVP_PKEY_RSA)
    return wxhw_fail(L, "crypto", "RSA key required for OAEP");
  if (encrypt && n > (size_t)EVP_PKEY_get_size(box->pkey) - 42)
    return wxhw_fail(L, "crypto", "OAEP plaintext too long: %zu bytes, at most %d for this key", n,
                     EVP_PKEY_get_size(box->pkey) - 42);
  if (!(ctx = oaep_ctx(box->pkey, encrypt))) return wxhw_raise_ssl(L, "OAEP: cannot set up");
  outlen = (size_t)EVP_PKEY_get_size(box->pkey);
  out = (unsigned char *)luaL_buffinitsize(L, &b, outlen);
  ok = encrypt ? EVP_PKEY_encrypt(ctx, out, &outlen, in, n) : EVP_PKEY_decrypt(ctx, out, &outlen, in, n);
  EVP_PKEY_CTX_free(ctx);
  if (ok <= 0) {
    luaL_pushresultsize(&b, 0);
    return wxhw_fail_ssl(L, encrypt ? "OAEP encryption failed" : "OAEP decryption failed (wrong key or corrupted ciphertext)");
  }
  luaL_pushresultsize(&b, outlen);
  return 1;
}

static int pub_encrypt_oaep(lua_State *L) { return oaep(L, PUBKEY_CLASS, 1); }
static int key_decrypt_oaep(lua_State *L) { return oaep(L, KEY_CLASS, 0); }

static int push_pem(lua_State *L, EVP_PKEY *pkey, int private_part) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *data;
  long len;
  int ok;
  if (!bio) return wxhw_raise_ssl(L, "out of memory");
  ok = private_part ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
                    : PEM_write_bio_PUBKEY(bio, pkey);
  if (!ok) {
    BIO_free(bio);
    return wxhw_raise_ssl(L, "PEM encoding failed");
  }
  len = BIO_get_mem_data(bio, &data);
  lua_pushlstring(L, data, (size_t)len);
  BIO_free(bio);
  return 1;
}

static int key_public_pem(lua_State *L) { return push_pem(L, check_box(L, 1, KEY_CLASS)->pkey, 0); }
static int pub_pem(lua_State *L) { return push_pem(L, check_box(L, 1, PUBKEY_CLASS)->pkey, 0); }

/* Named explicitly so exporting private material is never an accident. */
static int key_private_pem(lua_State *L) { return push_pem(L, check_box(L, 1, KEY_CLASS)->pkey, 1); }

static int key_public_key(lua_State *L) {
  pkey_box *box = check_box(L, 1, KEY_CLASS);
  if (!EVP_PKEY_up_ref(box->pkey)) return wxhw_raise_ssl(L, "out of memory");
  wxhw_push_public_key(L, box->pkey);
  return 1;
}

static int box_type(lua_State *L, const char *cls) {
  lua_pushstring(L, EVP_PKEY_get_base_id(check_box(L, 1, cls)->pkey) == EVP_PKEY_RSA ? "rsa" : "ec");
  return 1;
}
static int key_type(lua_State *L) { return box_type(L, KEY_CLASS); }
static int pub_type(lua_State *L) { return box_type(L, PUBKEY_CLASS); }

static int box_bits(lua_State *L, const char *cls) {
  lua_pushinteger(L, EVP_PKEY_get_bits(check_box(L, 1, cls)->pkey));
  return 1;
}
static int key_bits(lua_State *L) { return box_bits(L, KEY_CLASS); }
static int pub_bits(lua_State *L) { return box_bits(L, PUBKEY_CLASS); }

static int box_tostring(lua_State *L, const char *cls, const char *what) {
  pkey_box *box = (pkey_box *)luaL_checkudata(L, 1, cls);
  if (!box->pkey)
    lua_pushfstring(L, "%s (closed)", cls);
  else
    lua_pushfstring(L, "%s: %s %d-bit %s (%p)", cls, type_name(box->pkey), EVP_PKEY_get_bits(box->pkey),
                    what, (void *)box);
  return 1;
}
static int key_tostring(lua_State *L) { return box_tostring(L, KEY_CLASS, "private key"); }
static int pub_tostring(lua_State *L) { return box_tostring(L, PUBKEY_CLASS, "public key"); }

void wxhw_crypto_pkey_register(lua_State *L) {
  static const luaL_Reg key_methods[] = {
      {"sign", key_sign},
      {"decrypt_oaep", key_decrypt_oaep},
      {"public_key", key_public_key},
      {"public_pem", key_public_pem},
      {"private_pem", key_private_pem},
      {"type", key_type},
      {"bits", key_bits},
      {"close", box_close},
      {NULL, NULL},
  };
  static const luaL_Reg key_meta[] = {
      {"__gc", box_close}, {"__close", box_close}, {"__tostring", key_tostring}, {NULL, NULL}};
  static const luaL_Reg pub_methods[] = {
      {"verify", pub_verify},
      {"encrypt_oaep", pub_encrypt_oaep},
      {"pem", pub_pem},
      {"type", pub_type},
      {"bits", pub_bits},
      {"close", box_close},
      {NULL, NULL},
  };
  static const luaL_Reg pub_meta[] = {
      {"__gc", box_close}, {"__close", box_close}, {"__tostring", pub_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"private_key", l_private_key},
      {"public_key", l_public_key},
      {"generate_ec_key", l_generate_ec_key},
      {"generate_rsa_key", l_generate_rsa_key},
      {NULL, NULL},
  };
  wxhw_newclass(L, KEY_CLASS, key_methods, key_meta);
  wxhw_newclass(L, PUBKEY_CLASS, pub_methods, pub_meta);
  wxhw_crypto_setfuncs(L, funcs);
}
