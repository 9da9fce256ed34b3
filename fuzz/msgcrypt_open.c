/* The untrusted-byte parsers of a WeChat push open (csrc/crypto/wire.c): the
 * JSON envelope scan, strict base64 and the decrypted framing. Links
 * ../csrc/crypto/wire.c alone (no Lua, no OpenSSL):
 *   clang -fsanitize=fuzzer,address,undefined -I../csrc/crypto msgcrypt_open.c ../csrc/crypto/wire.c
 * Input byte 0 picks the parser; the rest is the body, the Encrypt text or
 * the decrypted plaintext. Checks the results stay inside their buffers and
 * that decoded base64 re-encodes to the input's length. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char rid[] = "wxbench000000001";
  unsigned char *buf;
  size_t n, len = 0, bad = 0, off = 0, mlen = 0;
  unsigned long detail = 0;
  if (size < 1) return 0;
  n = size - 1;
  buf = (unsigned char *)malloc(n + WXHW_B64_ENCODED_LEN(n) + 1);
  if (!buf) return 0;
  switch (data[0] % 3) {
    case 0: /* envelope: the unescaped value fits in the body */
      if (wxhw_json_envelope((const char *)data + 1, n, (char *)buf, &len)) {
        if (len > n) abort();
      }
      break;
    case 1: /* base64: decode, then the encoding of the result is the input */
      if (wxhw_b64_decode(data + 1, n, buf, &len, &bad) == 0) {
        char *again = (char *)malloc(WXHW_B64_ENCODED_LEN(len) + 1);
        if (!again) break;
        if (len > n / 4 * 3 || wxhw_b64_encode(buf, len, again) != n) abort();
        /* only the length: non-canonical trailing bits ("AB==") re-encode differently */
        free(again);
      } else if (bad > n) {
        abort();
      }
      break;
    default: /* framing of a decrypted message */
      if (n > 0 && wxhw_msg_unframe(data + 1, n, rid, sizeof rid - 1, &off, &mlen, &detail) == WXHW_UNFRAME_OK) {
        if (off + mlen + (sizeof rid - 1) > n || memcmp(data + 1 + off + mlen, rid, sizeof rid - 1) != 0) abort();
      }
      break;
  }
  free(buf);
  return 0;
}
