/* Byte-level codecs of the crypto module that need neither Lua nor OpenSSL
 * (so fuzz targets can link csrc/crypto/wire.c alone): strict base64, the
 * Encrypt field of a WeChat JSON push envelope, and the WXBizMsgCrypt
 * plaintext framing random16 | len(4, BE) | msg | receive_id | PKCS#7(32). */
#ifndef WXHW_CRYPTO_WIRE_H
#define WXHW_CRYPTO_WIRE_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

#define WXHW_B64_ENCODED_LEN(n) (4 * (((n) + 2) / 3))

/* Encodes n bytes; out holds WXHW_B64_ENCODED_LEN(n). Returns the length. */
size_t wxhw_b64_encode(const unsigned char *s, size_t n, char *out);

/* Strict RFC 4648 (padded, no whitespace). out holds n / 4 * 3 bytes.
 * Returns 0 and sets *outlen, or -1 with *bad = offset of the first bad
 * byte (n itself when the length is not a multiple of 4). */
int wxhw_b64_decode(const unsigned char *s, size_t n, unsigned char *out, size_t *outlen, size_t *bad);

/* Maps random bytes to at most `want` characters of [0-9A-Za-z], uniformly
 * (bytes >= 248 are skipped: 62 does not divide 256). Returns how many. */
size_t wxhw_alnum_from_random(const unsigned char *rnd, size_t n, char *out, size_t want);

/* The string value of the last top-level "Encrypt" key (else of the last
 * "encrypt" key) of a JSON object, unescaped into out (holds n bytes).
 * Returns 1 when found; 0 when the body is not plain enough to be sure of
 * what a JSON decoder reads (not strict RFC 8259, non-ASCII, \u escapes,
 * escaped keys, deep nesting, a non-string value, no such key): the caller
 * then asks a full JSON decoder. Never 1 for a body a decoder rejects. */
int wxhw_json_envelope(const char *body, size_t n, char *out, size_t *outlen);

enum wxhw_unframe_result {
  WXHW_UNFRAME_OK = 0,
  WXHW_UNFRAME_PAD_VALUE,    /* detail: the padding byte */
  WXHW_UNFRAME_PAD_MISMATCH, /* padding bytes differ */
  WXHW_UNFRAME_SHORT,        /* fewer than 20 bytes before the padding */
  WXHW_UNFRAME_LENGTH,       /* detail: the length field, past the data */
  WXHW_UNFRAME_RECEIVE_ID    /* trailing id is not receive_id */
};

/* Checks a decrypted message (n > 0) and locates msg in it. */
enum wxhw_unframe_result wxhw_msg_unframe(const unsigned char *plain, size_t n, const char *rid, size_t ridlen,
                                          size_t *msg_off, size_t *msg_len, unsigned long *detail);

#pragma GCC visibility pop

#endif
