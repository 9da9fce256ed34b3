/* Device framing (docs/framing.md): a 16-byte big-endian header
 *   magic 0x57 | version 1 | type | flags | stream(16) | seq(16) | ts_ms(32) | length(32)
 * followed by `length` payload bytes. The decoder is incremental: bytes may
 * arrive in any chunking. A bad magic, version or oversized length is fatal
 * (the byte stream is out of sync) and the decoder stays failed. */
#include <string.h>

#include "media.h"

void wm_frame_put_header(uint8_t *p, const wm_frame_hdr *h) {
  p[0] = WM_FRAME_MAGIC;
  p[1] = WM_FRAME_VERSION;
  p[2] = h->type;
  p[3] = h->flags;
  p[4] = (uint8_t)(h->stream >> 8), p[5] = (uint8_t)h->stream;
  p[6] = (uint8_t)(h->seq >> 8), p[7] = (uint8_t)h->seq;
  p[8] = (uint8_t)(h->ts_ms >> 24), p[9] = (uint8_t)(h->ts_ms >> 16);
  p[10] = (uint8_t)(h->ts_ms >> 8), p[11] = (uint8_t)h->ts_ms;
  p[12] = (uint8_t)(h->len >> 24), p[13] = (uint8_t)(h->len >> 16);
  p[14] = (uint8_t)(h->len >> 8), p[15] = (uint8_t)h->len;
}

void wm_deframer_init(wm_deframer *d, uint32_t max_len) {
  memset(d, 0, sizeof *d);
  d->max_len = max_len;
}

void wm_deframer_free(wm_deframer *d) { wm_buf_free(&d->body); }

static int fail(wm_deframer *d, const char *why) {
  d->failed = 1;
  d->why = why;
  return WM_EBAD;
}

static int parse_header(wm_deframer *d) {
  const uint8_t *p = d->hdr;
  if (p[0] != WM_FRAME_MAGIC) return fail(d, "framing: bad magic byte (stream out of sync)");
  if (p[1] != WM_FRAME_VERSION) return fail(d, "framing: unsupported version");
  d->cur.type = p[2];
  d->cur.flags = p[3];
  d->cur.stream = (uint16_t)(p[4] << 8 | p[5]);
  d->cur.seq = (uint16_t)(p[6] << 8 | p[7]);
  d->cur.ts_ms = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
  d->cur.len = (uint32_t)p[12] << 24 | (uint32_t)p[13] << 16 | (uint32_t)p[14] << 8 | p[15];
  if (d->cur.len > d->max_len) return fail(d, "framing: payload length above the configured maximum");
  return WM_OK;
}

static int emit(wm_deframer *d, const uint8_t *p, wm_out *out) {
  wm_meta m = {0};
  m.ts = d->cur.ts_ms;
  /* wire flags -> item flags (key, discontinuity, end); reserved bits ignored */
  m.flags = (d->cur.flags & 1 ? WM_F_KEY : 0) | (d->cur.flags & 2 ? WM_F_GAP : 0) |
            (d->cur.flags & 4 ? WM_F_EOS : 0);
  m.seq = d->cur.seq;
  m.stream = d->cur.stream;
  m.type = d->cur.type;
  d->hfill = 0;
  d->body.len = 0;
  return wm_out_append(out, p, d->cur.len, &m);
}

int wm_deframer_push(wm_deframer *d, const uint8_t *p, size_t n, wm_out *out) {
  int count = 0;
  if (d->failed) return WM_EBAD;
  while (n > 0) {
    if (d->hfill < WM_FRAME_HDR) {
      size_t take = WM_FRAME_HDR - d->hfill;
      if (take > n) take = n;
      memcpy(d->hdr + d->hfill, p, take);
      d->hfill += take, p += take, n -= take;
      /* check the magic early so garbage fails at its first byte */
      if (d->hdr[0] != WM_FRAME_MAGIC) return fail(d, "framing: bad magic byte (stream out of sync)");
      if (d->hfill < WM_FRAME_HDR) break;
      if (parse_header(d) != WM_OK) return WM_EBAD;
      if (d->cur.len == 0 || (d->body.len == 0 && n >= d->cur.len)) {
        /* whole payload available: no intermediate copy */
        if (emit(d, p, out)) return WM_ENOMEM;
        p += d->cur.len, n -= d->cur.len;
        count++;
        continue;
      }
    }
    {
      size_t need = d->cur.len - d->body.len, take = need < n ? need : n;
      if (wm_buf_put(&d->body, p, take)) return WM_ENOMEM;
      p += take, n -= take;
      if (d->body.len == d->cur.len) {
        if (emit(d, d->body.p, out)) return WM_ENOMEM;
        count++;
      }
    }
  }
  return count;
}
