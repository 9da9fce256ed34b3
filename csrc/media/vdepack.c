/* H.264 / H.265 RTP depacketiser with the RFC loss rules: a NAL is started
 * only by a single/aggregated packet or an FU with S=1; any sequence gap or
 * rejected packet damages the access unit in progress, which is dropped
 * whole, and output resumes at the next key frame. Access units end on the
 * marker bit or on a timestamp change (some senders never set M). */
#include <stdlib.h>
#include <string.h>

#include "media.h"

static const uint8_t start_code[4] = {0, 0, 0, 1};

void wm_vdepack_init(wm_vdepack *d, int codec, int wait_key) {
  memset(d, 0, sizeof *d);
  d->codec = codec;
  d->wait_key = wait_key ? 1 : 0;
}

void wm_vdepack_free(wm_vdepack *d) { wm_buf_free(&d->au); }

static int finish(wm_vdepack *d, wm_out *out) {
  int r = 0;
  if (!d->have_au) return 0;
  if (d->fu_open) d->damaged = 1; /* FU without its E fragment */
  if (d->damaged || (d->wait_key && d->au_vcl && !d->au_key)) {
    if (d->damaged) d->wait_key = 1;
    if (d->au.len) d->dropped_frames++;
  } else if (d->au.len) {
    wm_meta m = {0};
    m.ts = d->au_ts;
    m.flags = d->au_key ? WM_F_KEY : 0;
    if (wm_out_append(out, d->au.p, d->au.len, &m)) return WM_ENOMEM;
    if (d->au_key) d->wait_key = 0;
    d->frames++;
    r = 1;
  }
  d->have_au = d->damaged = d->fu_open = d->au_key = d->au_vcl = 0;
  d->au.len = 0;
  return r;
}

static void note(wm_vdepack *d, int type) {
  if (wm_nal_is_key(d->codec, type)) d->au_key = 1;
  if (wm_nal_is_vcl(d->codec, type)) d->au_vcl = 1;
}

static int put_nal(wm_vdepack *d, const uint8_t *p, size_t n) {
  note(d, wm_nal_type(d->codec, p));
  if (wm_buf_reserve(&d->au, n + 4)) return WM_ENOMEM;
  memcpy(d->au.p + d->au.len, start_code, 4);
  memcpy(d->au.p + d->au.len + 4, p, n);
  d->au.len += n + 4;
  return WM_OK;
}

static int bad(wm_vdepack *d, const char *why) {
  d->why = why;
  d->malformed++;
  d->damaged = 1;
  d->fu_open = 0;
  return WM_EBAD;
}

/* Aggregation packet: STAP-A (hl = 1) or AP (hl = 2). */
static int aggregation(wm_vdepack *d, const uint8_t *p, size_t n, size_t hl) {
  size_t off = hl, count = 0;
  /* validate first so a bad packet adds nothing */
  while (off < n) {
    size_t sz;
    if (n - off < 2) return bad(d, "aggregation packet: truncated NAL size field");
    sz = (size_t)(p[off] << 8 | p[off + 1]);
    off += 2;
    if (sz < hl) return bad(d, "aggregation packet: NAL size smaller than a NAL header");
    if (sz > n - off) return bad(d, "aggregation packet: NAL size runs past the end");
    off += sz;
    count++;
  }
  if (count == 0) return bad(d, "aggregation packet holds no NAL");
  for (off = hl; off < n;) {
    size_t sz = (size_t)(p[off] << 8 | p[off + 1]);
    if (put_nal(d, p + off + 2, sz)) return WM_ENOMEM;
    off += 2 + sz;
  }
  return WM_OK;
}

static int fu(wm_vdepack *d, const uint8_t *p, size_t n, size_t hl) {
  uint8_t fh, hdr[2];
  int s, e, type;
  if (n < hl + 2) return bad(d, "fragmentation unit shorter than its headers plus one byte");
  fh = p[hl];
  s = fh >> 7, e = (fh >> 6) & 1;
  if (hl == 2) {
    type = fh & 0x3f;
    hdr[0] = (uint8_t)((p[0] & 0x81) | (type << 1));
    hdr[1] = p[1];
    if (type >= 48) return bad(d, "fragmentation unit carries an aggregation/fragment type");
  } else {
    type = fh & 0x1f;
    hdr[0] = (uint8_t)((p[0] & 0xe0) | type);
    if (type == 0 || type >= 24) return bad(d, "fragmentation unit carries a reserved NAL type");
  }
  if (s) {
    if (d->fu_open) d->damaged = 1; /* previous NAL never saw E */
    d->fu_open = 1;
    d->fu_start = d->au.len;
    note(d, type);
    if (wm_buf_put(&d->au, start_code, 4) || wm_buf_put(&d->au, hdr, hl)) return WM_ENOMEM;
  } else if (!d->fu_open) {
    d->damaged = 1; /* start fragment lost: drop, never fabricate a header */
    return WM_OK;
  } else if ((d->au.p[d->fu_start + 4] & (hl == 2 ? 0x7e : 0x1f)) != (hl == 2 ? type << 1 : type)) {
    return bad(d, "fragmentation unit type changed inside one NAL");
  }
  if (wm_buf_put(&d->au, p + hl + 1, n - hl - 1)) return WM_ENOMEM;
  if (e) d->fu_open = 0;
  return WM_OK;
}

int wm_vdepack_push(wm_vdepack *d, const uint8_t *pkt, size_t n, wm_out *out) {
  wm_rtp h;
  const char *why = NULL;
  int count = 0, r, type, h265 = d->codec == WM_H265;
  size_t hl = h265 ? 2 : 1;
  const uint8_t *p;
  d->why = NULL;
  if (wm_rtp_parse(pkt, n, &h, &why) != WM_OK) {
    d->why = why;
    d->malformed++;
    return 0;
  }
  if (d->have_seq) {
    int16_t delta = (int16_t)(uint16_t)(h.seq - d->last_seq);
    if (delta <= 0) return 0; /* duplicate or late: already accounted for */
    if (delta != 1) {
      d->gaps++;
      d->damaged = d->have_au; /* the open AU lost packets */
      d->fu_open = 0;
      if (d->have_au && h.ts != d->au_ts) {
        if ((r = finish(d, out)) < 0) return r;
        count += r;
      }
      /* the packets lost may have begun the AU this packet belongs to */
      d->have_au = 1, d->damaged = 1, d->au_ts = h.ts;
    }
  }
  d->have_seq = 1;
  d->last_seq = h.seq;
  if (d->have_au && h.ts != d->au_ts) {
    if ((r = finish(d, out)) < 0) return r;
    count += r;
  }
  if (!d->have_au) d->have_au = 1, d->au_ts = h.ts;
  p = h.payload;
  n = h.payload_len;
  if (n < hl) {
    r = bad(d, "RTP payload shorter than a NAL header");
  } else if ((type = wm_nal_type(d->codec, p)), h265) {
    if (type < 48) r = put_nal(d, p, n);
    else if (type == 48) r = aggregation(d, p, n, 2);
    else if (type == 49) r = fu(d, p, n, 2);
    else if (type == 50) r = WM_OK; /* PACI: informative, ignored */
    else r = bad(d, "reserved H.265 payload type");
  } else {
    if (type >= 1 && type <= 23) r = put_nal(d, p, n);
    else if (type == 24) r = aggregation(d, p, n, 1);
    else if (type == 28) r = fu(d, p, n, 1);
    else if (type == 25 || type == 26 || type == 27 || type == 29)
      r = bad(d, "interleaved packetization (STAP-B/MTAP/FU-B) is not supported");
    else r = bad(d, "reserved H.264 NAL type");
  }
  if (r == WM_ENOMEM) return r;
  if (h.marker) {
    int f = finish(d, out);
    if (f < 0) return f;
    count += f;
  }
  return count;
}

int wm_vdepack_flush(wm_vdepack *d, wm_out *out) { return finish(d, out); }
