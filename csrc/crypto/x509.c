/* X.509 certificates: what WeChat Pay needs to pick and trust a platform key. */
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto.h"

static int push_time(lua_State *L, const ASN1_TIME *t) {
  struct tm tm;
  if (!t || !ASN1_TIME_to_tm(t, &tm)) return 0;
  lua_pushinteger(L, (lua_Integer)timegm(&tm));
  return 1;
}

static void push_name(lua_State *L, const X509_NAME *name) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *data;
  long len;
  if (!bio) return (void)lua_pushliteral(L, "");
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  len = BIO_get_mem_data(bio, &data);
  lua_pushlstring(L, data, (size_t)len);
  BIO_free(bio);
}

/* certificate(pem) --> { serial = "UPPERCASE HEX", not_before, not_after,
 *                        subject, issuer, public_key } | nil, err */
static int l_certificate(lua_State *L) {
  size_t n;
  const char *pem = luaL_checklstring(L, 1, &n);
  BIO *bio = BIO_new_mem_buf(pem, (int)n);
  X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  BIGNUM *bn;
  char *hex;
  EVP_PKEY *pkey;
  BIO_free(bio);
  if (!cert) return wxhw_fail_ssl(L, "not a PEM certificate");
  bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  hex = bn ? BN_bn2hex(bn) : NULL;
  BN_free(bn);
  if (!hex) {
    X509_free(cert);
    return wxhw_raise_ssl(L, "certificate: cannot read serial");
  }
  lua_createtable(L, 0, 6);
  lua_pushstring(L, hex);
  OPENSSL_free(hex);
  lua_setfield(L, -2, "serial");
  if (push_time(L, X509_get0_notBefore(cert))) lua_setfield(L, -2, "not_before");
  if (push_time(L, X509_get0_notAfter(cert))) lua_setfield(L, -2, "not_after");
  push_name(L, X509_get_subject_name(cert));
  lua_setfield(L, -2, "subject");
  push_name(L, X509_get_issuer_name(cert));
  lua_setfield(L, -2, "issuer");
  pkey = X509_get_pubkey(cert);
  X509_free(cert);
  if (pkey) {
    wxhw_push_public_key(L, pkey);
    lua_setfield(L, -2, "public_key");
  }
  ERR_clear_error();
  return 1;
}

void wxhw_crypto_x509_register(lua_State *L) {
  static const luaL_Reg funcs[] = {{"certificate", l_certificate}, {NULL, NULL}};
  wxhw_crypto_setfuncs(L, funcs);
}
