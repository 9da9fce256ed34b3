/* See json_ints.h. The scan follows JSON's token rules only as far as it
 * needs to: strings (with escapes) are skipped, a number is "-"? digits, and
 * one with a fraction or exponent is a double anyway. Anything else is left
 * for the decoder to accept or refuse. */
#include <string.h>

#include "json_ints.h"

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int wxhw_json_beyond_2_53(const char *d, size_t n) {
  static const char limit[] = "9007199254740992"; /* 2^53: still exact */
  while (n > 1 && *d == '0') d++, n--;           /* invalid JSON, but harmless */
  if (n != sizeof limit - 1) return n > sizeof limit - 1;
  return memcmp(d, limit, n) > 0;
}

int wxhw_json_next_big_int(const char *s, size_t n, size_t from, size_t *start, size_t *len) {
  size_t i = from;
  while (i < n) {
    char c = s[i];
    if (c == '"') {
      for (i++;; i++) {
        if (i >= n) return -1;
        if (s[i] == '\\') i++;
        else if (s[i] == '"') break;
      }
      i++;
    } else if (is_digit(c) || (c == '-' && i + 1 < n && is_digit(s[i + 1]))) {
      size_t b = i, d = c == '-' ? i + 1 : i;
      for (i = d; i < n && is_digit(s[i]); i++) {}
      if (i < n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) {
        while (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' ||
                         s[i] == '-'))
          i++;
      } else if (wxhw_json_beyond_2_53(s + d, i - d)) {
        *start = b;
        *len = i - b;
        return 1;
      }
    } else {
      i++;
    }
  }
  return 0;
}
