/* RTP header (RFC 3550 §5.1) parse/write and wrap-aware counters. */
#include <string.h>

#include "media.h"

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int wm_rtp_parse(const uint8_t *p, size_t n, wm_rtp *h, const char **why) {
  size_t off, i, end = n;
  if (n < 12) return *why = "packet shorter than the 12-byte RTP header", WM_EBAD;
  if ((p[0] >> 6) != 2) return *why = "RTP version is not 2", WM_EBAD;
  h->padding = (p[0] >> 5) & 1;
  h->extension = (p[0] >> 4) & 1;
  h->cc = p[0] & 0x0f;
  h->marker = p[1] >> 7;
  h->pt = p[1] & 0x7f;
  h->seq = (uint16_t)(p[2] << 8 | p[3]);
  h->ts = be32(p + 4);
  h->ssrc = be32(p + 8);
  off = 12 + 4u * h->cc;
  if (off > n) return *why = "CSRC list runs past the end of the packet", WM_EBAD;
  for (i = 0; i < h->cc; i++) h->csrc[i] = be32(p + 12 + 4 * i);
  h->ext = NULL, h->ext_len = 0, h->ext_profile = 0;
  if (h->extension) {
    size_t words;
    if (off + 4 > n) return *why = "header extension runs past the end of the packet", WM_EBAD;
    h->ext_profile = (uint16_t)(p[off] << 8 | p[off + 1]);
    words = (size_t)(p[off + 2] << 8 | p[off + 3]);
    off += 4;
    if (words * 4 > n - off) return *why = "header extension runs past the end of the packet", WM_EBAD;
    h->ext = p + off, h->ext_len = words * 4;
    off += words * 4;
  }
  if (h->padding) {
    uint8_t pad = p[n - 1];
    if (pad == 0 || pad > n - off) return *why = "bad RTP padding count", WM_EBAD;
    end = n - pad;
  }
  h->header_len = off;
  h->payload = p + off;
  h->payload_len = end - off;
  return WM_OK;
}

size_t wm_rtp_write(uint8_t *p, const wm_rtp *h) {
  size_t off = 12, i;
  wm_rtp_put12(p, h->marker, h->pt, h->seq, h->ts, h->ssrc);
  p[0] = (uint8_t)(0x80 | (h->ext ? 0x10 : 0) | (h->cc & 0x0f));
  for (i = 0; i < (h->cc & 0x0fu); i++, off += 4) {
    uint32_t c = h->csrc[i];
    p[off] = (uint8_t)(c >> 24), p[off + 1] = (uint8_t)(c >> 16);
    p[off + 2] = (uint8_t)(c >> 8), p[off + 3] = (uint8_t)c;
  }
  if (h->ext) {
    size_t words = (h->ext_len + 3) / 4;
    p[off] = (uint8_t)(h->ext_profile >> 8), p[off + 1] = (uint8_t)h->ext_profile;
    p[off + 2] = (uint8_t)(words >> 8), p[off + 3] = (uint8_t)words;
    memcpy(p + off + 4, h->ext, h->ext_len);
    memset(p + off + 4 + h->ext_len, 0, words * 4 - h->ext_len);
    off += 4 + words * 4;
  }
  return off;
}

/* The extended value is the one closest to the previous extended value. */
int64_t wm_unwrap16(wm_unwrap *u, uint16_t v) {
  if (!u->started) {
    u->started = 1;
    u->last = v;
  } else {
    int16_t d = (int16_t)(uint16_t)(v - (uint16_t)u->last);
    u->last += d;
  }
  return u->last;
}

int64_t wm_unwrap32(wm_unwrap *u, uint32_t v) {
  if (!u->started) {
    u->started = 1;
    u->last = v;
  } else {
    int32_t d = (int32_t)(uint32_t)(v - (uint32_t)u->last);
    u->last += d;
  }
  return u->last;
}
