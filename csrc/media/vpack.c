/* H.264 (RFC 6184 packetization-mode 1) and H.265 (RFC 7798) packetiser:
 * consecutive NALs that fit are aggregated (STAP-A / AP), a lone one is sent
 * as a single-NAL packet, larger ones are fragmented (FU-A / FU). The marker
 * is set on the last packet of the access unit only. */
#include <string.h>

#include "media.h"

#define MAX_AGG 32

typedef struct {
  wm_vpack *pk;
  uint32_t ts;
  wm_out *out;
  int count;
} ctx;

static int skip_type(int codec, int t) {
  /* types reserved for RTP itself must never come from an encoder */
  return codec == WM_H265 ? t >= 48 : (t == 0 || t >= 24);
}

static int fetch(int codec, const uint8_t *au, size_t len, size_t *pos, wm_nal *nal) {
  while (wm_annexb_next(au, len, pos, nal)) {
    size_t hl = codec == WM_H265 ? 2 : 1;
    if (nal->len >= hl && !skip_type(codec, wm_nal_type(codec, nal->p))) return 1;
  }
  return 0;
}

static uint8_t *begin(ctx *c, size_t payload, int marker) {
  uint8_t *w = wm_out_begin(c->out, 12 + payload);
  if (w) wm_rtp_put12(w, marker, c->pk->pt, c->pk->seq, c->ts, c->pk->ssrc);
  return w;
}

static int commit(ctx *c, size_t len, int marker) {
  wm_meta m = {0};
  m.ts = c->ts;
  m.seq = c->pk->seq++;
  m.flags = marker ? WM_F_MARKER : 0;
  m.type = c->pk->pt;
  c->count++;
  return wm_out_commit(c->out, len, &m);
}

static int single(ctx *c, const wm_nal *n, int marker) {
  uint8_t *w = begin(c, n->len, marker);
  if (!w) return WM_ENOMEM;
  memcpy(w + 12, n->p, n->len);
  return commit(c, 12 + n->len, marker);
}

static int aggregate(ctx *c, const wm_nal *ns, int k, size_t size, int marker) {
  int i, h265 = c->pk->codec == WM_H265;
  uint8_t *w, *q;
  if (k == 1) return single(c, &ns[0], marker);
  if (!(w = begin(c, size, marker))) return WM_ENOMEM;
  q = w + 12;
  if (h265) {
    /* F = OR of F bits, LayerId and TID = lowest of the aggregated NALs */
    int f = 0, layer = 63, tid = 7;
    for (i = 0; i < k; i++) {
      int l = ((ns[i].p[0] & 1) << 5) | (ns[i].p[1] >> 3), t = ns[i].p[1] & 7;
      f |= ns[i].p[0] & 0x80;
      if (l < layer) layer = l;
      if (t < tid) tid = t;
    }
    *q++ = (uint8_t)(f | (48 << 1) | (layer >> 5));
    *q++ = (uint8_t)(((layer & 31) << 3) | tid);
  } else {
    int f = 0, nri = 0;
    for (i = 0; i < k; i++) {
      f |= ns[i].p[0] & 0x80;
      if ((ns[i].p[0] & 0x60) > nri) nri = ns[i].p[0] & 0x60;
    }
    *q++ = (uint8_t)(f | nri | 24);
  }
  for (i = 0; i < k; i++) {
    *q++ = (uint8_t)(ns[i].len >> 8), *q++ = (uint8_t)ns[i].len;
    memcpy(q, ns[i].p, ns[i].len);
    q += ns[i].len;
  }
  return commit(c, (size_t)(q - w), marker);
}

static int fragment(ctx *c, const wm_nal *n, size_t budget, int last_nal) {
  int h265 = c->pk->codec == WM_H265;
  size_t hl = h265 ? 2 : 1, fh = hl + 1, chunk = budget - fh;
  const uint8_t *p = n->p + hl;
  size_t left = n->len - hl;
  int type = wm_nal_type(c->pk->codec, n->p), first = 1;
  while (left > 0) {
    size_t take = left < chunk ? left : chunk;
    int end = take == left, marker = end && last_nal;
    uint8_t *w = begin(c, fh + take, marker);
    if (!w) return WM_ENOMEM;
    if (h265) {
      w[12] = (uint8_t)((n->p[0] & 0x81) | (49 << 1));
      w[13] = n->p[1];
    } else {
      w[12] = (uint8_t)((n->p[0] & 0xe0) | 28);
    }
    w[12 + hl] = (uint8_t)((first ? 0x80 : 0) | (end ? 0x40 : 0) | type);
    memcpy(w + 12 + fh, p, take);
    if (commit(c, 12 + fh + take, marker)) return WM_ENOMEM;
    p += take, left -= take, first = 0;
  }
  return WM_OK;
}

int wm_vpack_au(wm_vpack *pk, const uint8_t *au, size_t len, uint32_t ts, wm_out *out) {
  ctx c = {pk, ts, out, 0};
  int h265 = pk->codec == WM_H265, have;
  size_t hl = h265 ? 2 : 1, budget, pos = 0, agg_hdr = hl, size = 0;
  wm_nal cur, next, pend[MAX_AGG];
  int k = 0, r;
  if (pk->mtu < 12 + hl + 2 || pk->mtu > 65535) return WM_EINVAL;
  budget = pk->mtu - 12;
  have = fetch(pk->codec, au, len, &pos, &cur);
  while (have) {
    int last;
    have = fetch(pk->codec, au, len, &pos, &next);
    last = !have;
    if (cur.len <= budget) {
      if (pk->aggregate) {
        if (k && (k == MAX_AGG || size + 2 + cur.len > budget)) {
          if ((r = aggregate(&c, pend, k, size, 0))) return r;
          k = 0;
        }
        if (!k) size = agg_hdr;
        pend[k++] = cur;
        size += 2 + cur.len;
        if (last && (r = aggregate(&c, pend, k, size, 1))) return r;
      } else if ((r = single(&c, &cur, last))) {
        return r;
      }
    } else {
      if (k && (r = aggregate(&c, pend, k, size, 0))) return r;
      k = 0;
      if ((r = fragment(&c, &cur, budget, last))) return r;
    }
    cur = next;
  }
  return c.count;
}
