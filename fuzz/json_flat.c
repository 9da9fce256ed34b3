/* The flat-object reader of the JSON decoder's fast path (csrc/json_flat.c),
 * linked alone:
 *   clang -fsanitize=fuzzer,address,undefined -I../csrc json_flat.c ../csrc/json_flat.c ../csrc/json_ints.c
 * On an accepted text every member must lie inside it in order, keys and
 * plain strings hold no quote, backslash or control byte, a number is a
 * whole strtod token, literals are what they say, and unescaping never
 * writes more than it reads. The Lua spec (spec/json_flat_spec.lua) checks
 * the values against cjson. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_flat.h"

static void plain_bytes(const uint8_t *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i] == '"' || p[i] == '\\' || p[i] < 0x20) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  struct wxhw_flat_member m[WXHW_FLAT_MAX];
  size_t count = 99, i, prev = 0;
  if (!wxhw_json_flat(s, size, '.', m, &count)) {
    if (count != 0) abort();
    return 0;
  }
  if (count > WXHW_FLAT_MAX) abort();
  for (i = 0; i < count; i++) {
    if (m[i].key_off < prev || m[i].key_off + m[i].key_len > size) abort();
    if (m[i].key_off == 0 || data[m[i].key_off - 1] != '"' || data[m[i].key_off + m[i].key_len] != '"') abort();
    plain_bytes(data + m[i].key_off, m[i].key_len);
    prev = m[i].key_off + m[i].key_len;
    switch (m[i].kind) {
    case WXHW_FLAT_STRING:
    case WXHW_FLAT_ESCAPED: {
      char *out;
      size_t len;
      if (m[i].off < prev || m[i].off + m[i].len >= size || data[m[i].off + m[i].len] != '"') abort();
      if (m[i].kind == WXHW_FLAT_STRING) plain_bytes(data + m[i].off, m[i].len);
      out = malloc(m[i].len + 1);
      if (!out) abort();
      len = wxhw_json_flat_unescape(s + m[i].off, m[i].len, out);
      if (len > m[i].len || (m[i].kind == WXHW_FLAT_ESCAPED && len == m[i].len)) abort();
      free(out);
      prev = m[i].off + m[i].len;
      break;
    }
    case WXHW_FLAT_NUMBER:
    case WXHW_FLAT_BIG_INT: {
      char buf[512];
      char *end;
      if (m[i].off < prev || m[i].off + m[i].len > size || m[i].len == 0) abort();
      if (m[i].len < sizeof buf) {
        memcpy(buf, s + m[i].off, m[i].len);
        buf[m[i].len] = '\0';
        (void)strtod(buf, &end);
        if ((size_t)(end - buf) != m[i].len) abort();
      }
      prev = m[i].off + m[i].len;
      break;
    }
    default:
      break;
    }
  }
  return 0;
}
