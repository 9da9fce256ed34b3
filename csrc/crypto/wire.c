/* Strict base64, the JSON push envelope and the WXBizMsgCrypt framing: pure
 * byte code without Lua or OpenSSL (see wire.h), shared by
 * digest.c and msg.c and linked alone by fuzz targets. */
#include <string.h>

#include "wire.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t wxhw_b64_encode(const unsigned char *s, size_t n, char *out) {
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
    out[o++] = b64chars[v >> 18];
    out[o++] = b64chars[(v >> 12) & 63];
    out[o++] = b64chars[(v >> 6) & 63];
    out[o++] = b64chars[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
    out[o++] = b64chars[v >> 18];
    out[o++] = b64chars[(v >> 12) & 63];
    out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  return o;
}

/* 0..63 for the alphabet, 64 for '=', 255 for anything else. */
static const unsigned char b64table[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255,  64, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

int wxhw_b64_decode(const unsigned char *s, size_t n, unsigned char *out, size_t *outlen, size_t *bad) {
  size_t i, o = 0, pad = 0;
  if (n % 4 != 0) {
    *bad = n;
    return -1;
  }
  if (n >= 1 && s[n - 1] == '=') pad++;
  if (n >= 2 && s[n - 2] == '=') pad++;
  for (i = 0; i < n; i += 4) {
    unsigned a = b64table[s[i]], c = b64table[s[i + 1]], d = b64table[s[i + 2]], e = b64table[s[i + 3]];
    if ((a | c | d | e) > 63) { /* padding (only at the very end) or a bad byte */
      size_t k, limit = (i + 4 == n) ? 4 - pad : 4;
      for (k = 0; k < 4; k++)
        if (b64table[s[i + k]] > 63 && (k < limit || s[i + k] != '=')) {
          *bad = i + k;
          return -1;
        }
      a &= 63, c &= 63, d &= 63, e &= 63;
    }
    unsigned triple = a << 18 | c << 12 | d << 6 | e;
    out[o++] = (unsigned char)(triple >> 16);
    out[o++] = (unsigned char)(triple >> 8);
    out[o++] = (unsigned char)triple;
  }
  *outlen = o - pad;
  return 0;
}

size_t wxhw_alnum_from_random(const unsigned char *rnd, size_t n, char *out, size_t want) {
  static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  size_t i, o = 0;
  for (i = 0; i < n && o < want; i++)
    if (rnd[i] < 248) out[o++] = alphabet[rnd[i] % 62];
  return o;
}

/* JSON envelope ------------------------------------------------------------
 * A strict RFC 8259 validator that only says yes when any JSON decoder (Lua
 * cjson in particular: last duplicate key wins, \u handling, depth limit)
 * must read the same Encrypt value; otherwise the caller decodes fully. */

#define JSON_MAX_DEPTH 32

typedef struct {
  const unsigned char *p, *end;
} json_cur;

static void json_ws(json_cur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* 1 for bytes a JSON string holds as they are (printable ASCII but '"' and
 * '\\'); everything else ends the fast scan of json_string. */
static const unsigned char json_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* At '"'. ASCII only, no \u (a decoder's surrogate rules vary). */
static int json_string(json_cur *c, const unsigned char **s, size_t *len, int *escaped) {
  const unsigned char *p = c->p + 1, *start = p, *end = c->end;
  *escaped = 0;
  for (;;) {
    while (p < end && json_plain[*p]) p++;
    if (p >= end) return 0;
    if (*p == '"') {
      *s = start;
      *len = (size_t)(p - start);
      c->p = p + 1;
      return 1;
    }
    if (*p != '\\' || p + 1 >= end || !memchr("\"\\/bfnrt", p[1], 8)) return 0;
    *escaped = 1;
    p += 2;
  }
}

static int json_digits(json_cur *c) {
  const unsigned char *p = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
  return c->p > p;
}

static int json_number(json_cur *c) {
  if (c->p < c->end && *c->p == '-') c->p++;
  if (c->p >= c->end) return 0;
  if (*c->p == '0') c->p++;
  else if (!json_digits(c)) return 0;
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    if (!json_digits(c)) return 0;
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
    if (!json_digits(c)) return 0;
  }
  return 1;
}

static int json_literal(json_cur *c, const char *word, size_t n) {
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
  c->p += n;
  return 1;
}

/* A top-level member "Encrypt"/"encrypt" (last one wins, as in a decoder). */
typedef struct {
  const unsigned char *s;
  size_t len;
  int seen, is_string, escaped;
} json_member;

typedef struct {
  json_member upper, lower;
  int escaped_key;
} json_envelope_state;

static int json_value(json_cur *c, int depth, json_envelope_state *top);

/* At '{' or '['. top != NULL only for the outermost object. */
static int json_container(json_cur *c, int depth, json_envelope_state *top) {
  int object = *c->p == '{';
  unsigned char close = object ? '}' : ']';
  if (depth >= JSON_MAX_DEPTH) return 0;
  c->p++;
  json_ws(c);
  if (c->p < c->end && *c->p == close) {
    c->p++;
    return 1;
  }
  for (;;) {
    json_member *m = NULL;
    if (object) {
      const unsigned char *k;
      size_t klen;
      int kesc;
      if (c->p >= c->end || *c->p != '"' || !json_string(c, &k, &klen, &kesc)) return 0;
      if (top) {
        if (kesc) top->escaped_key = 1;
        else if (klen == 7 && memcmp(k, "Encrypt", 7) == 0) m = &top->upper;
        else if (klen == 7 && memcmp(k, "encrypt", 7) == 0) m = &top->lower;
      }
      json_ws(c);
      if (c->p >= c->end || *c->p != ':') return 0;
      c->p++;
      json_ws(c);
    }
    if (m && c->p < c->end && *c->p == '"') {
      m->seen = m->is_string = 1;
      if (!json_string(c, &m->s, &m->len, &m->escaped)) return 0;
    } else {
      if (m) m->seen = 1, m->is_string = 0;
      if (!json_value(c, depth + 1, NULL)) return 0;
    }
    json_ws(c);
    if (c->p >= c->end) return 0;
    if (*c->p == close) {
      c->p++;
      return 1;
    }
    if (*c->p != ',') return 0;
    c->p++;
    json_ws(c);
  }
}

static int json_value(json_cur *c, int depth, json_envelope_state *top) {
  const unsigned char *s;
  size_t len;
  int esc;
  if (c->p >= c->end) return 0;
  switch (*c->p) {
    case '"': return json_string(c, &s, &len, &esc);
    case '{': case '[': return json_container(c, depth, top);
    case 't': return json_literal(c, "true", 4);
    case 'f': return json_literal(c, "false", 5);
    case 'n': return json_literal(c, "null", 4);
    default: return json_number(c);
  }
}

/* Copies runs between backslashes whole: base64 from cjson has "\\/" about
 * every 64 bytes. */
static size_t json_unescape(const unsigned char *s, size_t n, char *out) {
  const unsigned char *end = s + n;
  size_t o = 0;
  while (s < end) {
    const unsigned char *bs = (const unsigned char *)memchr(s, '\\', (size_t)(end - s));
    size_t run = (size_t)((bs ? bs : end) - s);
    unsigned char ch;
    memcpy(out + o, s, run);
    o += run;
    if (!bs) break;
    ch = bs[1]; /* json_string checked: one of "\\/bfnrt */
    switch (ch) {
      case 'b': ch = '\b'; break;
      case 'f': ch = '\f'; break;
      case 'n': ch = '\n'; break;
      case 'r': ch = '\r'; break;
      case 't': ch = '\t'; break;
      default: break;
    }
    out[o++] = (char)ch;
    s = bs + 2;
  }
  return o;
}

int wxhw_json_envelope(const char *body, size_t n, char *out, size_t *outlen) {
  json_cur c = {(const unsigned char *)body, (const unsigned char *)body + n};
  json_envelope_state st;
  const json_member *m;
  memset(&st, 0, sizeof st);
  json_ws(&c);
  if (c.p >= c.end || *c.p != '{' || !json_container(&c, 0, &st)) return 0;
  json_ws(&c);
  if (c.p != c.end || st.escaped_key) return 0;
  /* t.Encrypt or t.encrypt: Encrypt when present (a false value would fall
   * through to encrypt in Lua; leave such bodies to the decoder) */
  m = st.upper.seen ? &st.upper : &st.lower;
  if (!m->seen || !m->is_string) return 0;
  *outlen = m->escaped ? json_unescape(m->s, m->len, out) : (memcpy(out, m->s, m->len), m->len);
  return 1;
}

/* Framing ------------------------------------------------------------------ */

enum wxhw_unframe_result wxhw_msg_unframe(const unsigned char *plain, size_t n, const char *rid, size_t ridlen,
                                          size_t *msg_off, size_t *msg_len, unsigned long *detail) {
  unsigned pad = plain[n - 1];
  size_t i, body_end;
  unsigned long len;
  if (pad < 1 || pad > 32) {
    *detail = pad;
    return WXHW_UNFRAME_PAD_VALUE;
  }
  if (pad > n) return WXHW_UNFRAME_PAD_MISMATCH;
  for (i = n - pad; i < n; i++)
    if (plain[i] != pad) return WXHW_UNFRAME_PAD_MISMATCH;
  body_end = n - pad;
  if (body_end < 20) return WXHW_UNFRAME_SHORT;
  len = (unsigned long)plain[16] << 24 | (unsigned long)plain[17] << 16 | (unsigned long)plain[18] << 8 | plain[19];
  if (len > body_end - 20) {
    *detail = len;
    return WXHW_UNFRAME_LENGTH;
  }
  if (body_end - 20 - len != ridlen || memcmp(plain + 20 + len, rid, ridlen) != 0) return WXHW_UNFRAME_RECEIVE_ID;
  *msg_off = 20;
  *msg_len = len;
  return WXHW_UNFRAME_OK;
}
