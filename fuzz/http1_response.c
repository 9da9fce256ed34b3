/* HTTP/1.x response parser (csrc/http/h1.c). The input is parsed twice: in one
 * piece and in pieces whose sizes come from the input; both runs must agree
 * on the outcome, the status, the headers and the body (a split must never
 * change the meaning). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

typedef struct {
  uint64_t hash;  /* of the headers, in order */
  uint64_t bhash; /* of the body bytes, however they were cut */
  uint64_t body;
} sink;

static void mix(sink *s, const char *p, size_t n, uint64_t tag) {
  size_t i;
  s->hash = (s->hash ^ tag) * 1099511628211ull;
  for (i = 0; i < n; i++) s->hash = (s->hash ^ (unsigned char)p[i]) * 1099511628211ull;
}

static int on_header(void *ud, const char *name, size_t nlen, const char *value, size_t vlen) {
  mix(ud, name, nlen, 1);
  mix(ud, value, vlen, 2);
  return 0;
}

static int on_body(void *ud, const char *p, size_t n) {
  sink *s = ud;
  size_t i;
  for (i = 0; i < n; i++) s->bhash = (s->bhash ^ (unsigned char)p[i]) * 1099511628211ull;
  s->body += n;
  return s->body > (1u << 20); /* a cap, like max_body */
}

typedef struct {
  int rc, status, keep, kind;
  uint64_t used;
  sink s;
} outcome;

static outcome run(const uint8_t *data, size_t size, int head, int eof, const uint8_t *steps, size_t nsteps) {
  wxhw_h1 p;
  outcome o;
  size_t off = 0, k = 0;
  memset(&p, 0, sizeof p);
  memset(&o, 0, sizeof o);
  p.head = head;
  p.ud = &o.s;
  p.on_header = on_header;
  p.on_body = on_body;
  wxhw_h1_init(&p);
  o.rc = WXHW_H1_MORE;
  while (off < size) {
    size_t step = nsteps ? 1 + steps[k++ % nsteps] % 97 : size, used = 0;
    if (step > size - off) step = size - off;
    o.rc = wxhw_h1_feed(&p, (const char *)data + off, step, &used);
    off += used;
    if (o.rc != WXHW_H1_MORE) break;
  }
  if (o.rc == WXHW_H1_MORE && eof) o.rc = wxhw_h1_eof(&p);
  o.used = off;
  o.status = p.status;
  o.keep = p.keep_alive;
  o.kind = p.body_kind;
  wxhw_h1_free(&p);
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *steps;
  size_t nsteps;
  outcome a, b;
  int head, eof;
  if (size < 2) return 0;
  head = data[0] & 1;
  eof = (data[0] >> 1) & 1;
  nsteps = (data[0] >> 2) & 15; /* split sizes, taken from the start of the input */
  data++, size--;
  if (nsteps > size) nsteps = size;
  steps = data;
  a = run(data, size, head, eof, NULL, 0);
  b = run(data, size, head, eof, steps, nsteps ? nsteps : 1);
  if (a.rc != b.rc || a.status != b.status || a.s.hash != b.s.hash || a.s.bhash != b.s.bhash || a.s.body != b.s.body)
    abort();
  if (a.rc == WXHW_H1_DONE && (a.keep != b.keep || a.kind != b.kind || a.used != b.used)) abort();
  return 0;
}
