/* The big-integer scan of JSON text (csrc/json_ints.c), linked alone:
 *   clang -fsanitize=fuzzer,address,undefined -I../csrc json_ints.c ../csrc/json_ints.c
 * Every span it reports must be an integer literal beyond 2^53 that starts
 * and ends at token edges, lies outside strings (an independent count of
 * unescaped quotes before it is even), and comes after the previous one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_ints.h"

static int digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* 1 when position p of s is outside every string (quotes counted, escapes honoured). */
static int outside_strings(const uint8_t *s, size_t p) {
  int in = 0;
  size_t i;
  for (i = 0; i < p; i++) {
    if (in && s[i] == '\\') i++;
    else if (s[i] == '"') in = !in;
  }
  return !in;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  size_t pos = 0, start, len;
  int r;
  while ((r = wxhw_json_next_big_int(s, size, pos, &start, &len)) == 1) {
    size_t d = start, i;
    if (start < pos || len == 0 || start + len > size) abort();
    if (data[d] == '-') d++;
    if (start + len - d < 16) abort();
    for (i = d; i < start + len; i++)
      if (!digit(data[i])) abort();
    if (d > 0 && digit(data[d - 1])) abort(); /* the digits are a whole run */
    if (start + len < size && (digit(data[start + len]) || data[start + len] == '.' ||
                               data[start + len] == 'e' || data[start + len] == 'E')) abort();
    if (!outside_strings(data, start)) abort();
    pos = start + len;
  }
  if (r != 0 && r != -1) abort();
  return 0;
}
