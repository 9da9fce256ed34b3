/* FLV muxer (H.264 / H.265 video, AAC audio) and tag reader. Each tag is one
 * wm_out item including its trailing PreviousTagSize, so a server can send
 * items as they come (HTTP-FLV) and cache the sequence-header items. */
#include <string.h>

#include "media.h"

void wm_flv_init(wm_flv *f, int video_codec, int hevc_flavour) {
  memset(f, 0, sizeof *f);
  f->video_codec = video_codec;
  f->hevc_flavour = hevc_flavour;
  f->last_dts = -1;
}

void wm_flv_free(wm_flv *f) {
  int i;
  for (i = 0; i < 3; i++) wm_buf_free(&f->ps[i]);
  wm_buf_free(&f->tmp);
}

int wm_flv_header(wm_out *out, int audio, int video) {
  uint8_t h[13] = {'F', 'L', 'V', 1, 0, 0, 0, 0, 9, 0, 0, 0, 0};
  h[4] = (uint8_t)((audio ? 4 : 0) | (video ? 1 : 0));
  return wm_out_append(out, h, sizeof h, NULL) ? WM_ENOMEM : 1;
}

/* tag = 11-byte header | prefix | body | PreviousTagSize */
static int tag(wm_out *out, uint8_t type, uint32_t ts, const uint8_t *prefix, size_t plen,
               const uint8_t *body, size_t blen, uint32_t flags) {
  size_t size = plen + blen;
  uint8_t *w;
  wm_meta m = {0};
  if (size >= (1u << 24)) return WM_EINVAL;
  if (!(w = wm_out_begin(out, 11 + size + 4))) return WM_ENOMEM;
  w[0] = type;
  w[1] = (uint8_t)(size >> 16), w[2] = (uint8_t)(size >> 8), w[3] = (uint8_t)size;
  w[4] = (uint8_t)(ts >> 16), w[5] = (uint8_t)(ts >> 8), w[6] = (uint8_t)ts;
  w[7] = (uint8_t)((ts >> 24) & 0x7f);
  w[8] = w[9] = w[10] = 0;
  memcpy(w + 11, prefix, plen);
  if (blen) memcpy(w + 11 + plen, body, blen);
  size += 11;
  w[size] = (uint8_t)(size >> 24), w[size + 1] = (uint8_t)(size >> 16);
  w[size + 2] = (uint8_t)(size >> 8), w[size + 3] = (uint8_t)size;
  m.ts = ts;
  m.flags = flags;
  m.type = type;
  return wm_out_commit(out, size + 4, &m);
}

static int same(const wm_buf *b, const wm_nal *n) {
  return b->len == n->len && memcmp(b->p, n->p, n->len) == 0;
}

int wm_flv_video(wm_flv *f, const uint8_t *au, size_t len, uint32_t dts_ms, int32_t cts_ms,
                 wm_out *out, const char **why) {
  int h265 = f->video_codec == WM_H265, count = 0, key = 0, changed = 0, r;
  size_t pos = 0;
  wm_nal nal, ps[3] = {{0}};
  uint8_t pre[8];
  size_t plen;
  if (f->last_dts >= 0 && (int64_t)dts_ms < f->last_dts)
    return *why = "FLV: video DTS goes backwards", WM_EBAD;
  if (cts_ms < -(1 << 23) || cts_ms >= (1 << 23)) return *why = "FLV: composition time out of range", WM_EBAD;
  /* pass 1: parameter sets and key flag; body = length-prefixed slices */
  f->tmp.len = 0;
  while (wm_annexb_next(au, len, &pos, &nal)) {
    int t, slot = -1;
    if (nal.len < (size_t)(h265 ? 2 : 1)) continue;
    t = wm_nal_type(f->video_codec, nal.p);
    if (h265) slot = t == 32 ? 0 : t == 33 ? 1 : t == 34 ? 2 : -1;
    else slot = t == 7 ? 1 : t == 8 ? 2 : -1;
    if (slot >= 0) {
      ps[slot] = nal;
      if (!same(&f->ps[slot], &nal)) changed = 1;
      continue;
    }
    if (h265 ? t == 35 : (t == 9 || t == 12)) continue; /* AUD, filler */
    if (wm_nal_is_key(f->video_codec, t)) key = 1;
    {
      uint8_t l[4] = {(uint8_t)(nal.len >> 24), (uint8_t)(nal.len >> 16), (uint8_t)(nal.len >> 8),
                      (uint8_t)nal.len};
      if (wm_buf_put(&f->tmp, l, 4) || wm_buf_put(&f->tmp, nal.p, nal.len)) return WM_ENOMEM;
    }
  }
  if (changed) {
    int i, first = h265 ? 0 : 1;
    for (i = first; i < 3; i++)
      if (!ps[i].p) return *why = "FLV: access unit updates only some parameter sets", WM_EBAD;
    for (i = first; i < 3; i++) {
      f->ps[i].len = 0;
      if (wm_buf_put(&f->ps[i], ps[i].p, ps[i].len)) return WM_ENOMEM;
    }
    f->have_vseq = 0;
  }
  if (!f->have_vseq) {
    wm_buf rec = {0};
    if (!f->ps[1].len) {
      /* nothing decodable before the first parameter sets */
      return *why = "FLV: no SPS/PPS seen yet (start with a key frame)", WM_EBAD;
    }
    r = h265 ? wm_hvcc_record(f->ps[0].p, f->ps[0].len, f->ps[1].p, f->ps[1].len, f->ps[2].p,
                              f->ps[2].len, &rec)
             : wm_avcc_record(f->ps[1].p, f->ps[1].len, f->ps[2].p, f->ps[2].len, &rec);
    if (r != WM_OK) {
      wm_buf_free(&rec);
      if (r == WM_ENOMEM) return r;
      return *why = "FLV: cannot parse the SPS for the decoder configuration record", WM_EBAD;
    }
    if (h265 && f->hevc_flavour == WM_FLV_H265_ENHANCED) {
      pre[0] = 0x80 | (1 << 4) | 0; /* IsExHeader | key frame | SequenceStart */
      memcpy(pre + 1, "hvc1", 4);
      plen = 5;
    } else {
      pre[0] = (uint8_t)(0x10 | (h265 ? 12 : 7));
      pre[1] = 0, pre[2] = pre[3] = pre[4] = 0;
      plen = 5;
    }
    r = tag(out, 9, dts_ms, pre, plen, rec.p, rec.len, WM_F_CONFIG | WM_F_KEY);
    wm_buf_free(&rec);
    if (r) return r;
    f->have_vseq = 1;
    count++;
  }
  if (f->tmp.len) {
    uint32_t c = (uint32_t)cts_ms & 0xffffff;
    if (h265 && f->hevc_flavour == WM_FLV_H265_ENHANCED) {
      /* CodedFrames (1) carries SI24 composition time; CodedFramesX (3) when it is 0 */
      pre[0] = (uint8_t)(0x80 | ((key ? 1 : 2) << 4) | (cts_ms ? 1 : 3));
      memcpy(pre + 1, "hvc1", 4);
      plen = 5;
      if (cts_ms) pre[5] = (uint8_t)(c >> 16), pre[6] = (uint8_t)(c >> 8), pre[7] = (uint8_t)c, plen = 8;
    } else {
      pre[0] = (uint8_t)((key ? 0x10 : 0x20) | (h265 ? 12 : 7));
      pre[1] = 1;
      pre[2] = (uint8_t)(c >> 16), pre[3] = (uint8_t)(c >> 8), pre[4] = (uint8_t)c;
      plen = 5;
    }
    if ((r = tag(out, 9, dts_ms, pre, plen, f->tmp.p, f->tmp.len, key ? WM_F_KEY : 0))) return r;
    count++;
  }
  f->last_dts = dts_ms;
  return count;
}

int wm_flv_aac(wm_flv *f, const uint8_t *p, size_t n, uint32_t ts_ms, wm_out *out,
               const char **why) {
  int count = 0, r;
  uint64_t k = 0;
  while (n > 0) {
    wm_adts h;
    uint8_t pre[2] = {0xaf, 1};
    uint32_t ts;
    if (wm_adts_parse(p, n, &h, why) != WM_OK) return WM_EBAD;
    {
      uint8_t asc[2];
      int aot = h.profile + 1;
      asc[0] = (uint8_t)(aot << 3 | h.sf_index >> 1);
      asc[1] = (uint8_t)((h.sf_index & 1) << 7 | h.channels << 3);
      if (!f->have_aseq || memcmp(asc, f->asc, 2) != 0) {
        uint8_t seq[2] = {0xaf, 0};
        memcpy(f->asc, asc, 2);
        if ((r = tag(out, 8, ts_ms, seq, 2, asc, 2, WM_F_CONFIG))) return r;
        f->have_aseq = 1;
        count++;
      }
    }
    ts = ts_ms + (uint32_t)((k * 1024 * 1000 + (uint64_t)h.rate / 2) / (uint64_t)h.rate);
    if ((r = tag(out, 8, ts, pre, 2, p + h.header_len, h.frame_len - h.header_len, 0))) return r;
    count++;
    k++;
    p += h.frame_len, n -= h.frame_len;
  }
  return count;
}

int wm_flv_read(const uint8_t *p, size_t n, size_t *pos, wm_flv_tag *t, const char **why) {
  size_t size;
  if (*pos == 0) {
    uint32_t off;
    if (n < 13) return 0;
    if (p[0] != 'F' || p[1] != 'L' || p[2] != 'V') return *why = "FLV: bad signature", WM_EBAD;
    off = (uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8];
    if (off < 9) return *why = "FLV: header DataOffset below 9", WM_EBAD;
    if ((size_t)off + 4 > n) return 0;
    *pos = (size_t)off + 4;
  }
  if (n - *pos < 11) return 0;
  p += *pos;
  size = (size_t)(p[1] << 16 | p[2] << 8 | p[3]);
  if (n - *pos - 11 < size + 4) return 0;
  {
    uint32_t prev = (uint32_t)p[11 + size] << 24 | (uint32_t)p[12 + size] << 16 |
                    (uint32_t)p[13 + size] << 8 | p[14 + size];
    if (prev != 11 + size) return *why = "FLV: PreviousTagSize does not match the tag", WM_EBAD;
  }
  if ((p[0] & 0x1f) != 8 && (p[0] & 0x1f) != 9 && (p[0] & 0x1f) != 18)
    return *why = "FLV: unknown tag type", WM_EBAD;
  t->type = p[0] & 0x1f;
  t->ts = (uint32_t)p[7] << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
  t->data = p + 11;
  t->len = size;
  *pos += 11 + size + 4;
  return 1;
}
