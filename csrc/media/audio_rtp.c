/* Audio RTP payloads: G.711 (RFC 3551, fixed ptime), Opus (RFC 7587: one
 * Opus packet per RTP packet, 48 kHz clock from the TOC), AAC (RFC 3640
 * AAC-hbr: 13-bit size + 3-bit index AU headers, ADTS header stripped). */
#include <string.h>

#include "media.h"

static int emit(wm_apack *a, const uint8_t *hdr, size_t hlen, const uint8_t *p, size_t n,
                uint32_t ts, int marker, wm_out *out) {
  uint8_t *w = wm_out_begin(out, 12 + hlen + n);
  wm_meta m = {0};
  if (!w) return WM_ENOMEM;
  wm_rtp_put12(w, marker, a->pt, a->seq, ts, a->ssrc);
  if (hlen) memcpy(w + 12, hdr, hlen);
  memcpy(w + 12 + hlen, p, n);
  m.ts = ts;
  m.seq = a->seq++;
  m.flags = marker ? WM_F_MARKER : 0;
  m.type = a->pt;
  return wm_out_commit(out, 12 + hlen + n, &m);
}

int wm_g711_pack(wm_apack *a, const uint8_t *p, size_t n, wm_out *out) {
  int count = 0;
  size_t per = a->ptime_samples;
  if (per == 0) return WM_EINVAL;
  while (n > 0) {
    const uint8_t *src;
    if (a->pending.len == 0 && n >= per) {
      src = p; /* whole packet straight from the input */
      p += per, n -= per;
    } else {
      size_t take = per - a->pending.len;
      if (take > n) take = n;
      if (wm_buf_put(&a->pending, p, take)) return WM_ENOMEM;
      p += take, n -= take;
      if (a->pending.len < per) break;
      src = a->pending.p;
    }
    if (emit(a, NULL, 0, src, per, a->ts, a->talkspurt, out)) return WM_ENOMEM;
    a->talkspurt = 0;
    a->ts += (uint32_t)per;
    a->pending.len = 0;
    count++;
  }
  return count;
}

int wm_opus_samples(const uint8_t *p, size_t n) {
  static const int silk[4] = {480, 960, 1920, 2880}, celt[4] = {120, 240, 480, 960};
  int config, frame, frames;
  if (n < 1) return WM_EBAD;
  config = p[0] >> 3;
  if (config < 12) frame = silk[config & 3];
  else if (config < 16) frame = (config & 1) ? 960 : 480;
  else frame = celt[config & 3];
  switch (p[0] & 3) {
    case 0: frames = 1; break;
    case 1:
    case 2: frames = 2; break;
    default:
      if (n < 2) return WM_EBAD;
      frames = p[1] & 0x3f;
      if (frames == 0) return WM_EBAD;
  }
  if (frames * frame > 5760) return WM_EBAD; /* at most 120 ms per packet */
  return frames * frame;
}

int wm_opus_pack(wm_apack *a, const uint8_t *p, size_t n, wm_out *out) {
  int samples = wm_opus_samples(p, n);
  if (samples < 0) return WM_EBAD;
  if (emit(a, NULL, 0, p, n, a->ts, a->talkspurt, out)) return WM_ENOMEM;
  a->talkspurt = 0;
  a->ts += (uint32_t)samples;
  return 1;
}

int wm_aac_pack(wm_apack *a, const uint8_t *p, size_t n, size_t mtu, wm_out *out,
                const char **why) {
  int count = 0;
  if (mtu < 12 + 4 + 1) return WM_EINVAL;
  while (n > 0) {
    wm_adts h;
    const uint8_t *raw;
    size_t rlen, off = 0, budget = mtu - 12 - 4;
    uint8_t hdr[4];
    if (wm_adts_parse(p, n, &h, why) != WM_OK) return WM_EBAD;
    raw = p + h.header_len, rlen = h.frame_len - h.header_len;
    if (rlen >= 8192) return *why = "AAC-hbr: AU larger than 8191 bytes", WM_EBAD;
    hdr[0] = 0x00, hdr[1] = 0x10; /* AU-headers-length: 16 bits */
    hdr[2] = (uint8_t)(rlen >> 5), hdr[3] = (uint8_t)((rlen & 0x1f) << 3);
    /* fragments repeat the AU header with the total size; M on the last */
    while (off < rlen) {
      size_t take = rlen - off < budget ? rlen - off : budget;
      if (emit(a, hdr, 4, raw + off, take, a->ts, off + take == rlen, out)) return WM_ENOMEM;
      off += take;
      count++;
    }
    a->ts += 1024;
    p += h.frame_len, n -= h.frame_len;
  }
  return count;
}

int wm_aac_unpack(const uint8_t *pkt, size_t n, wm_out *out, const char **why) {
  wm_rtp h;
  size_t bits, nh, i, off, data;
  int count = 0;
  if (wm_rtp_parse(pkt, n, &h, why) != WM_OK) return WM_EBAD;
  if (h.payload_len < 2) return *why = "AAC-hbr: payload shorter than AU-headers-length", WM_EBAD;
  bits = (size_t)(h.payload[0] << 8 | h.payload[1]);
  if (bits == 0 || bits % 16) return *why = "AAC-hbr: AU-headers-length is not a multiple of 16 bits", WM_EBAD;
  nh = bits / 16;
  data = 2 + nh * 2;
  if (data > h.payload_len) return *why = "AAC-hbr: AU headers run past the end", WM_EBAD;
  /* check every size first so a bad packet yields nothing */
  for (i = 0, off = data; i < nh; i++) {
    size_t size = (size_t)(h.payload[2 + 2 * i] << 5 | h.payload[3 + 2 * i] >> 3);
    if (size > h.payload_len - off) {
      if (nh == 1) return *why = "AAC-hbr: fragmented AU (reassembly is not supported)", WM_EBAD;
      return *why = "AAC-hbr: AU size runs past the end", WM_EBAD;
    }
    off += size;
  }
  for (i = 0, off = data; i < nh; i++) {
    size_t size = (size_t)(h.payload[2 + 2 * i] << 5 | h.payload[3 + 2 * i] >> 3);
    wm_meta m = {0};
    m.ts = (int64_t)h.ts + (int64_t)i * 1024;
    m.seq = h.seq;
    if (wm_out_append(out, h.payload + off, size, &m)) return WM_ENOMEM;
    off += size;
    count++;
  }
  return count;
}
