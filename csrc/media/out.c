/* wm_out (item lists in one buffer) and wm_buf (growable bytes). */
#include <stdlib.h>
#include <string.h>

#include "media.h"

void wm_out_reset(wm_out *o) { o->len = 0, o->n = 0; }

void wm_out_free(wm_out *o) {
  if (o->grow) {
    o->grow(o->ud, o->data, 0);
    o->grow(o->ud, o->off, 0);
    o->grow(o->ud, o->meta, 0);
  }
  o->data = NULL, o->off = NULL, o->meta = NULL;
  o->len = o->cap = o->n = o->ncap = 0;
}

static int grow_items(wm_out *o) {
  size_t ncap;
  void *a, *b;
  if (o->n < o->ncap) return WM_OK;
  if (!o->grow) return WM_ENOMEM;
  ncap = o->ncap ? o->ncap * 2 : 64;
  if (ncap > UINT32_MAX / sizeof(wm_meta)) return WM_ENOMEM;
  a = o->grow(o->ud, o->off, ncap * sizeof *o->off);
  if (!a) return WM_ENOMEM;
  o->off = a;
  b = o->grow(o->ud, o->meta, ncap * sizeof *o->meta);
  if (!b) return WM_ENOMEM;
  o->meta = b;
  o->ncap = ncap;
  return WM_OK;
}

uint8_t *wm_out_begin(wm_out *o, size_t max) {
  if (grow_items(o) != WM_OK) return NULL;
  if (max > UINT32_MAX - o->len) return NULL; /* offsets are 32-bit */
  if (!o->data || o->cap - o->len < max) { /* also for max == 0 on a fresh buffer */
    size_t cap = o->cap ? o->cap : 4096;
    void *p;
    if (!o->grow) return NULL;
    while (cap - o->len < max) cap *= 2;
    p = o->grow(o->ud, o->data, cap);
    if (!p) return NULL;
    o->data = p, o->cap = cap;
  }
  return o->data + o->len;
}

int wm_out_commit(wm_out *o, size_t len, const wm_meta *m) {
  static const wm_meta zero;
  o->off[o->n] = (uint32_t)o->len;
  o->meta[o->n] = m ? *m : zero;
  o->n++;
  o->len += len;
  return WM_OK;
}

int wm_out_append(wm_out *o, const void *p, size_t len, const wm_meta *m) {
  uint8_t *w = wm_out_begin(o, len);
  if (!w) return WM_ENOMEM;
  if (len) memcpy(w, p, len);
  return wm_out_commit(o, len, m);
}

int wm_buf_reserve(wm_buf *b, size_t extra) {
  size_t cap;
  void *p;
  if (b->cap - b->len >= extra) return WM_OK;
  if (extra > SIZE_MAX / 2 - b->len) return WM_ENOMEM;
  cap = b->cap ? b->cap : 256;
  while (cap - b->len < extra) cap *= 2;
  p = realloc(b->p, cap);
  if (!p) return WM_ENOMEM;
  b->p = p, b->cap = cap;
  return WM_OK;
}

int wm_buf_put(wm_buf *b, const void *p, size_t n) {
  if (wm_buf_reserve(b, n) != WM_OK) return WM_ENOMEM;
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
  return WM_OK;
}

void wm_buf_free(wm_buf *b) {
  free(b->p);
  b->p = NULL, b->len = b->cap = 0;
}
