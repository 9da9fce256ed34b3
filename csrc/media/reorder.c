/* "Prepare for WeChat": the server SDK wants SPS -> PPS (-> VPS first for
 * H.265) -> IDR before anything else. Parameter sets are cached from every
 * access unit; each key frame is sent with the cached sets in front of it;
 * frames before the first key frame are dropped; AUD and filler are removed. */
#include <string.h>

#include "media.h"

static const uint8_t sc[4] = {0, 0, 0, 1};

void wm_reorder_init(wm_reorder *r, int codec) {
  memset(r, 0, sizeof *r);
  r->codec = codec;
}

void wm_reorder_free(wm_reorder *r) {
  int i;
  for (i = 0; i < 3; i++) wm_buf_free(&r->ps[i]);
}

static int ps_slot(int codec, int t) {
  if (codec == WM_H265) return t == 32 ? 0 : t == 33 ? 1 : t == 34 ? 2 : -1;
  return t == 7 ? 1 : t == 8 ? 2 : -1;
}

static int skip(int codec, int t) {
  return codec == WM_H265 ? (t == 35 || t == 38) : (t == 9 || t == 12);
}

static int put(uint8_t **w, const uint8_t *p, size_t n) {
  memcpy(*w, sc, 4);
  memcpy(*w + 4, p, n);
  *w += 4 + n;
  return 0;
}

int wm_reorder_push(wm_reorder *r, const uint8_t *au, size_t len, int64_t ts, wm_out *out) {
  size_t pos = 0, need = 0, hl = r->codec == WM_H265 ? 2 : 1;
  wm_nal nal;
  int key = 0, i, first = r->codec == WM_H265 ? 0 : 1;
  uint8_t *w, *start;
  wm_meta m = {0};
  /* pass 1: cache parameter sets, find the key flag, size the output */
  while (wm_annexb_next(au, len, &pos, &nal)) {
    int t, slot;
    if (nal.len < hl) continue;
    t = wm_nal_type(r->codec, nal.p);
    slot = ps_slot(r->codec, t);
    if (slot >= 0) {
      r->ps[slot].len = 0;
      if (wm_buf_put(&r->ps[slot], nal.p, nal.len)) return WM_ENOMEM;
      continue;
    }
    if (skip(r->codec, t)) continue;
    if (wm_nal_is_key(r->codec, t)) key = 1;
    need += 4 + nal.len;
  }
  if (!key && !r->started) return 0;
  if (key) {
    for (i = first; i < 3; i++) {
      if (!r->ps[i].len) return 0; /* undecodable without its parameter sets: drop */
      need += 4 + r->ps[i].len;
    }
  }
  if (!(w = start = wm_out_begin(out, need))) return WM_ENOMEM;
  if (key)
    for (i = first; i < 3; i++) put(&w, r->ps[i].p, r->ps[i].len);
  pos = 0;
  while (wm_annexb_next(au, len, &pos, &nal)) {
    int t;
    if (nal.len < hl) continue;
    t = wm_nal_type(r->codec, nal.p);
    if (ps_slot(r->codec, t) >= 0 || skip(r->codec, t)) continue;
    put(&w, nal.p, nal.len);
  }
  r->started = 1;
  m.ts = ts;
  m.flags = key ? WM_F_KEY : 0;
  wm_out_commit(out, (size_t)(w - start), &m);
  return 1;
}
