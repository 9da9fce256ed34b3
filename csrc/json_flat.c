/* See json_flat.h. */
#include "json_flat.h"

#include "json_ints.h"

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n && is_ws(s[i])) i++;
  return i;
}

/* A string starting after its opening quote at i. Returns the index of the
 * closing quote, or n when declined; *escaped says whether it has escapes. */
static size_t scan_string(const char *s, size_t n, size_t i, int *escaped) {
  *escaped = 0;
  for (; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"') return i;
    if (c < 0x20) return n; /* control bytes: cjson's call */
    if (c == '\\') {
      if (i + 1 >= n) return n;
      switch (s[i + 1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        *escaped = 1;
        i++;
        break;
      default: /* \u (and anything invalid): the general decoder */
        return n;
      }
    }
  }
  return n;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at i; returns its end or
 * i when declined. *integral: no fraction or exponent. */
static size_t scan_number(const char *s, size_t n, size_t i, char decimal_point, int *integral) {
  size_t j = i;
  *integral = 1;
  if (j < n && s[j] == '-') j++;
  if (j >= n || !is_digit(s[j])) return i;
  if (s[j] == '0') {
    j++;
  } else {
    while (j < n && is_digit(s[j])) j++;
  }
  if (j < n && s[j] == '.') {
    if (decimal_point != '.') return i;
    j++;
    if (j >= n || !is_digit(s[j])) return i;
    while (j < n && is_digit(s[j])) j++;
    *integral = 0;
  }
  if (j < n && (s[j] == 'e' || s[j] == 'E')) {
    j++;
    if (j < n && (s[j] == '+' || s[j] == '-')) j++;
    if (j >= n || !is_digit(s[j])) return i;
    while (j < n && is_digit(s[j])) j++;
    *integral = 0;
  }
  return j;
}

static int literal(const char *s, size_t n, size_t i, const char *word, size_t len) {
  size_t k;
  if (n - i < len) return 0;
  for (k = 0; k < len; k++)
    if (s[i + k] != word[k]) return 0;
  return 1;
}

int wxhw_json_flat(const char *s, size_t n, char decimal_point, struct wxhw_flat_member *m, size_t *count) {
  size_t i = skip_ws(s, n, 0), k = 0;
  int escaped;
  *count = 0;
  if (i >= n || s[i] != '{') return 0;
  i = skip_ws(s, n, i + 1);
  if (i < n && s[i] == '}') {
    i = skip_ws(s, n, i + 1);
    return i == n;
  }
  for (;;) {
    size_t end;
    if (k == WXHW_FLAT_MAX || i >= n || s[i] != '"') return 0;
    end = scan_string(s, n, i + 1, &escaped);
    if (end >= n || escaped) return 0;
    m[k].key_off = i + 1;
    m[k].key_len = end - i - 1;
    i = skip_ws(s, n, end + 1);
    if (i >= n || s[i] != ':') return 0;
    i = skip_ws(s, n, i + 1);
    if (i >= n) return 0;
    if (s[i] == '"') {
      end = scan_string(s, n, i + 1, &escaped);
      if (end >= n) return 0;
      m[k].off = i + 1;
      m[k].len = end - i - 1;
      m[k].kind = escaped ? WXHW_FLAT_ESCAPED : WXHW_FLAT_STRING;
      i = end + 1;
    } else if (s[i] == '-' || is_digit(s[i])) {
      int integral;
      size_t d = s[i] == '-' ? i + 1 : i;
      end = scan_number(s, n, i, decimal_point, &integral);
      if (end == i) return 0;
      m[k].off = i;
      m[k].len = end - i;
      m[k].kind = integral && wxhw_json_beyond_2_53(s + d, end - d) ? WXHW_FLAT_BIG_INT : WXHW_FLAT_NUMBER;
      i = end;
    } else if (literal(s, n, i, "true", 4)) {
      m[k].kind = WXHW_FLAT_TRUE;
      i += 4;
    } else if (literal(s, n, i, "false", 5)) {
      m[k].kind = WXHW_FLAT_FALSE;
      i += 5;
    } else if (literal(s, n, i, "null", 4)) {
      m[k].kind = WXHW_FLAT_NULL;
      i += 4;
    } else {
      return 0; /* nested, or not JSON */
    }
    k++;
    i = skip_ws(s, n, i);
    if (i >= n) return 0;
    if (s[i] == '}') break;
    if (s[i] != ',') return 0;
    i = skip_ws(s, n, i + 1);
  }
  i = skip_ws(s, n, i + 1);
  if (i != n) return 0;
  *count = k;
  return 1;
}

size_t wxhw_json_flat_unescape(const char *s, size_t len, char *out) {
  size_t i, o = 0;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (c == '\\' && i + 1 < len) {
      c = s[++i];
      switch (c) {
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      default: break; /* '"', '\\', '/' stand for themselves */
      }
    }
    out[o++] = c;
  }
  return o;
}
