/* Incremental HTTP/1.x response parser (see h1.h). Lines (status line,
 * headers, chunk sizes, trailers) are handled in place when they arrive
 * whole, else gathered in p->line; body bytes go straight to on_body. */
#include <stdlib.h>
#include <string.h>

#include "h1.h"

enum {
  S_STATUS,      /* expecting a status line */
  S_HEADER,      /* header lines of the final response */
  S_INTERIM,     /* header lines of a 1xx response: skipped */
  S_BODY_LENGTH, /* remaining bytes by Content-Length */
  S_BODY_CLOSE,  /* everything until EOF */
  S_CHUNK_SIZE,  /* a chunk-size line */
  S_CHUNK_DATA,  /* remaining bytes of a chunk */
  S_CHUNK_END,   /* the CRLF after a chunk's data */
  S_TRAILER,     /* trailer lines after the last chunk: skipped */
  S_DONE,
  S_FAILED
};

#define MAX_CHUNK_LINE 4096 /* chunk size plus extensions */
#define MAX_CHUNK ((uint64_t)1 << 60)

void wxhw_h1_init(wxhw_h1 *p) {
  p->status = 0;
  p->minor = 1;
  p->keep_alive = 0;
  p->body_kind = WXHW_H1_BODY_NONE;
  p->content_length = 0;
  p->body_bytes = 0;
  p->received = 0;
  p->error = NULL;
  p->state = S_STATUS;
  p->has_cl = p->has_te = p->te_chunked = p->conn_close = p->conn_keep = 0;
  p->remaining = 0;
  p->head_bytes = 0;
  p->llen = 0;
}

void wxhw_h1_free(wxhw_h1 *p) {
  free(p->line);
  p->line = NULL;
  p->llen = p->lcap = 0;
}

static int fail(wxhw_h1 *p, const char *why) {
  p->error = why;
  p->state = S_FAILED;
  return WXHW_H1_ERROR;
}

static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ieq(const char *a, size_t n, const char *lit) {
  size_t i;
  if (strlen(lit) != n) return 0;
  for (i = 0; i < n; i++)
    if (lower((unsigned char)a[i]) != lit[i]) return 0;
  return 1;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* Calls fn for each comma-separated element of a list header, trimmed.
 * Empty elements are skipped (RFC 9110 5.6.1), or refused with `empty`
 * when the field is not a list. */
static int each_element(wxhw_h1 *p, const char *v, size_t n, const char *empty,
                        int (*fn)(wxhw_h1 *, const char *, size_t)) {
  size_t i = 0;
  while (i <= n) {
    size_t s = i, e;
    while (i < n && v[i] != ',') i++;
    e = i;
    while (s < e && is_ows(v[s])) s++;
    while (e > s && is_ows(v[e - 1])) e--;
    if (e == s && empty) return fail(p, empty);
    if (e > s && fn(p, v + s, e - s) != 0) return -1;
    i++;
  }
  return 0;
}

static int content_length_value(wxhw_h1 *p, const char *v, size_t n) {
  uint64_t x = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return fail(p, "malformed Content-Length");
    if (x > (UINT64_MAX - 9) / 10) return fail(p, "Content-Length out of range");
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  /* repeats ("5, 5" or two headers) are fine only when they agree */
  if (p->has_cl && p->content_length != x) return fail(p, "conflicting Content-Length values");
  p->has_cl = 1;
  p->content_length = x;
  return 0;
}

static int te_value(wxhw_h1 *p, const char *v, size_t n) {
  /* only "chunked", once and last, is a framing we read */
  if (p->te_chunked || !ieq(v, n, "chunked")) return fail(p, "unsupported Transfer-Encoding");
  p->te_chunked = 1;
  return 0;
}

static int connection_value(wxhw_h1 *p, const char *v, size_t n) {
  if (ieq(v, n, "close")) p->conn_close = 1;
  else if (ieq(v, n, "keep-alive")) p->conn_keep = 1;
  return 0;
}

static int status_line(wxhw_h1 *p, const char *s, size_t n) {
  int st;
  if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ')
    return fail(p, "malformed status line");
  if (s[9] < '1' || s[9] > '9' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
    return fail(p, "malformed status code");
  if (n > 12 && s[12] != ' ') return fail(p, "malformed status line");
  st = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  p->minor = s[7] - '0';
  p->status = st;
  if (st == 101) return fail(p, "unexpected 101 Switching Protocols");
  p->state = st < 200 ? S_INTERIM : S_HEADER;
  p->has_cl = p->has_te = p->te_chunked = p->conn_close = p->conn_keep = 0;
  p->content_length = 0;
  return 0;
}

/* Splits "name: value"; returns 0, or fails. */
static int split_header(wxhw_h1 *p, const char *s, size_t n, size_t *nlen, size_t *vs, size_t *ve) {
  size_t i = 0, e = n;
  while (i < n && s[i] != ':') {
    if (!is_tchar((unsigned char)s[i])) return fail(p, "malformed header line");
    i++;
  }
  if (i == 0 || i == n) return fail(p, "malformed header line");
  *nlen = i++;
  while (i < e && is_ows(s[i])) i++;
  while (e > i && is_ows(s[e - 1])) e--;
  *vs = i;
  *ve = e;
  return 0;
}

static int head_done(wxhw_h1 *p) {
  if (p->has_te) {
    if (p->minor == 0) return fail(p, "Transfer-Encoding in an HTTP/1.0 response");
    if (p->has_cl) return fail(p, "both Transfer-Encoding and Content-Length");
  }
  p->keep_alive = p->minor == 1 ? !p->conn_close : (p->conn_keep && !p->conn_close);
  if (p->head || p->status == 204 || p->status == 304) {
    p->body_kind = WXHW_H1_BODY_NONE;
  } else if (p->has_te) {
    p->body_kind = WXHW_H1_BODY_CHUNKED;
  } else if (p->has_cl) {
    p->body_kind = WXHW_H1_BODY_LENGTH;
    p->remaining = p->content_length;
  } else {
    p->body_kind = WXHW_H1_BODY_CLOSE;
    p->keep_alive = 0;
  }
  if (p->on_head_done && p->on_head_done(p->ud) != 0) return WXHW_H1_ABORT;
  switch (p->body_kind) {
  case WXHW_H1_BODY_CHUNKED: p->state = S_CHUNK_SIZE; break;
  case WXHW_H1_BODY_LENGTH: p->state = p->remaining ? S_BODY_LENGTH : S_DONE; break;
  case WXHW_H1_BODY_CLOSE: p->state = S_BODY_CLOSE; break;
  default: p->state = S_DONE;
  }
  return 0;
}

static int header_line(wxhw_h1 *p, const char *s, size_t n) {
  size_t nlen, vs, ve;
  int rc;
  if (n == 0) {
    if (p->state == S_INTERIM) {
      p->state = S_STATUS;
      return 0;
    }
    return head_done(p);
  }
  /* obsolete line folding (RFC 9112 5.2): refused, as dropping or joining
   * it would let a folded Content-Length or Transfer-Encoding line mean
   * something else to us than to a proxy in between */
  if (is_ows(s[0])) return fail(p, "obsolete line folding in a header");
  if ((rc = split_header(p, s, n, &nlen, &vs, &ve)) != 0) return rc;
  if (p->state == S_INTERIM) return 0;
  /* Content-Length is 1*DIGIT, at most repeated ("5, 5"): an empty value or
   * element is malformed, not absent (RFC 9110 8.6) */
  if (ieq(s, nlen, "content-length"))
    rc = each_element(p, s + vs, ve - vs, "malformed Content-Length", content_length_value);
  else if (ieq(s, nlen, "transfer-encoding")) {
    p->has_te = 1;
    rc = each_element(p, s + vs, ve - vs, NULL, te_value);
    if (rc == 0 && !p->te_chunked) rc = fail(p, "unsupported Transfer-Encoding");
  } else if (ieq(s, nlen, "connection")) rc = each_element(p, s + vs, ve - vs, NULL, connection_value);
  if (rc != 0) return p->state == S_FAILED ? WXHW_H1_ERROR : rc;
  if (p->on_header && p->on_header(p->ud, s, nlen, s + vs, ve - vs) != 0) return WXHW_H1_ABORT;
  return 0;
}

static int chunk_size_line(wxhw_h1 *p, const char *s, size_t n) {
  uint64_t x = 0;
  size_t i = 0;
  for (; i < n; i++) {
    int c = lower((unsigned char)s[i]), d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else break;
    if (x >= MAX_CHUNK) return fail(p, "chunk size out of range");
    x = x * 16 + (uint64_t)d;
  }
  if (i == 0) return fail(p, "malformed chunk size");
  while (i < n && is_ows(s[i])) i++;
  if (i < n && s[i] != ';') return fail(p, "malformed chunk size");
  if (x == 0) {
    p->state = S_TRAILER;
  } else {
    p->remaining = x;
    p->state = S_CHUNK_DATA;
  }
  return 0;
}

/* One complete line (without its line end) in the current state. */
static int on_line(wxhw_h1 *p, const char *s, size_t n) {
  if (memchr(s, '\0', n) || memchr(s, '\r', n)) return fail(p, "NUL or bare CR in the response head");
  switch (p->state) {
  case S_STATUS: return status_line(p, s, n);
  case S_HEADER:
  case S_INTERIM: return header_line(p, s, n);
  case S_CHUNK_SIZE: return chunk_size_line(p, s, n);
  case S_CHUNK_END:
    if (n) return fail(p, "missing CRLF after chunk data");
    p->state = S_CHUNK_SIZE;
    return 0;
  case S_TRAILER:
    if (n == 0) {
      p->state = S_DONE;
      return 0;
    }
    if (is_ows(s[0])) return fail(p, "obsolete line folding in a trailer");
    {
      size_t nlen, vs, ve;
      return split_header(p, s, n, &nlen, &vs, &ve);
    }
  default: return fail(p, "internal parser state");
  }
}

static int counts_as_head(const wxhw_h1 *p) {
  return p->state == S_STATUS || p->state == S_HEADER || p->state == S_INTERIM || p->state == S_TRAILER;
}

/* Consumes bytes of a line-based state from data[0..n); sets *k. */
static int line_step(wxhw_h1 *p, const char *data, size_t n, size_t *k) {
  const char *nl = memchr(data, '\n', n);
  size_t take = nl ? (size_t)(nl - data) + 1 : n, len;
  const char *s;
  int head = counts_as_head(p);
  /* head bytes already count a buffered partial line; chunk lines do not */
  if (head ? p->head_bytes + take > WXHW_H1_MAX_HEAD : p->llen + take > MAX_CHUNK_LINE)
    return fail(p, head ? "response head too large" : "chunk size line too long");
  if (head) p->head_bytes += take;
  *k = take;
  if (!nl) { /* partial: keep it */
    if (p->llen + take > p->lcap) {
      size_t cap = p->lcap ? p->lcap : 256;
      char *b;
      while (cap < p->llen + take) cap *= 2;
      if ((b = realloc(p->line, cap)) == NULL) return fail(p, "out of memory");
      p->line = b;
      p->lcap = cap;
    }
    memcpy(p->line + p->llen, data, take);
    p->llen += take;
    return 0;
  }
  if (p->llen) {
    int rc;
    if (p->llen + take > p->lcap) {
      char *b = realloc(p->line, p->llen + take);
      if (!b) return fail(p, "out of memory");
      p->line = b;
      p->lcap = p->llen + take;
    }
    memcpy(p->line + p->llen, data, take);
    len = p->llen + take - 1;
    p->llen = 0;
    s = p->line;
    if (len && s[len - 1] == '\r') len--;
    rc = on_line(p, s, len);
    return rc;
  }
  s = data;
  len = take - 1;
  if (len && s[len - 1] == '\r') len--;
  return on_line(p, s, len);
}

int wxhw_h1_feed(wxhw_h1 *p, const char *data, size_t n, size_t *used) {
  size_t off = 0;
  int rc;
  while (off < n && p->state != S_DONE) {
    size_t k = 0, left = n - off;
    switch (p->state) {
    case S_FAILED:
      *used = off;
      return WXHW_H1_ERROR;
    case S_BODY_LENGTH:
    case S_CHUNK_DATA:
      k = left < p->remaining ? left : (size_t)p->remaining;
      if (p->on_body && p->on_body(p->ud, data + off, k) != 0) {
        *used = off;
        return WXHW_H1_ABORT;
      }
      p->body_bytes += k;
      p->remaining -= k;
      if (p->remaining == 0) p->state = p->state == S_CHUNK_DATA ? S_CHUNK_END : S_DONE;
      break;
    case S_BODY_CLOSE:
      k = left;
      if (p->on_body && p->on_body(p->ud, data + off, k) != 0) {
        *used = off;
        return WXHW_H1_ABORT;
      }
      p->body_bytes += k;
      break;
    default:
      rc = line_step(p, data + off, left, &k);
      if (rc != 0) {
        p->received += k;
        *used = off + k;
        return rc;
      }
    }
    off += k;
    p->received += k;
  }
  *used = off;
  if (p->state == S_FAILED) return WXHW_H1_ERROR;
  return p->state == S_DONE ? WXHW_H1_DONE : WXHW_H1_MORE;
}

int wxhw_h1_eof(wxhw_h1 *p) {
  switch (p->state) {
  case S_DONE: return WXHW_H1_DONE;
  case S_BODY_CLOSE: p->state = S_DONE; return WXHW_H1_DONE;
  case S_FAILED: return WXHW_H1_ERROR;
  case S_STATUS:
    if (p->received == 0) {
      p->error = "empty reply from server";
      p->state = S_FAILED;
      return WXHW_H1_ERROR;
    }
    /* fall through */
  default:
    return fail(p, "connection closed before the response was complete");
  }
}
