/* Shared helpers for the libFuzzer targets: a growable wm_out, and splitting
 * the input into packets with a 2-byte length prefix each. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
#include <stdlib.h>
#include <string.h>

#include "media.h"

static void *fz_grow(void *ud, void *ptr, size_t size) {
  (void)ud;
  if (!size) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, size);
}

static inline void fz_out(wm_out *o) {
  memset(o, 0, sizeof *o);
  o->grow = fz_grow;
}

/* Next packet of the input: 2-byte big-endian length, then that many bytes
 * (clipped to what is left). Returns 0 at the end. */
static inline int fz_next(const uint8_t **p, size_t *n, const uint8_t **pkt, size_t *len) {
  size_t l;
  if (*n < 2) return 0;
  l = (size_t)((*p)[0] << 8 | (*p)[1]);
  *p += 2, *n -= 2;
  if (l > *n) l = *n;
  *pkt = *p, *len = l;
  *p += l, *n -= l;
  return 1;
}

/* Touches every byte of every item so ASan sees out-of-bounds output. */
static inline unsigned fz_touch(const wm_out *o) {
  unsigned s = 0;
  size_t i;
  for (i = 0; i < o->len; i++) s += o->data[i];
  for (i = 0; i < o->n; i++) s += (unsigned)wm_out_item_len(o, i);
  return s;
}
#endif
