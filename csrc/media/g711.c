/* G.711 µ-law / A-law (ITU-T G.711). Decoding follows the classic
 * expansion; encoding picks, for each 14-bit magnitude, the code whose
 * decoded value is nearest (threshold = midpoint between neighbouring code
 * values, rounded as (v1 + v2 + 4) >> 3) — the rule FFmpeg's pcm_mulaw and
 * pcm_alaw encoders use, so output matches them byte for byte. */
#include "media.h"

static int alaw2linear(uint8_t a) {
  int t, seg;
  a ^= 0x55;
  t = a & 0x0f;
  seg = (a & 0x70) >> 4;
  if (seg) t = (t + t + 1 + 32) << (seg + 2);
  else t = (t + t + 1) << 3;
  return (a & 0x80) ? t : -t;
}

static int ulaw2linear(uint8_t u) {
  int t;
  u = (uint8_t)~u;
  t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return (u & 0x80) ? (0x84 - t) : (t - 0x84);
}

void wm_ulaw_decode(const uint8_t *in, size_t n, int16_t *out) {
  size_t i;
  for (i = 0; i < n; i++) out[i] = (int16_t)ulaw2linear(in[i]);
}

void wm_alaw_decode(const uint8_t *in, size_t n, int16_t *out) {
  size_t i;
  for (i = 0; i < n; i++) out[i] = (int16_t)alaw2linear(in[i]);
}

/* thr[i]: first 14-bit magnitude that maps to code index i+1 */
static void thresholds(int (*dec)(uint8_t), uint8_t mask, int thr[127]) {
  int i;
  for (i = 0; i < 127; i++)
    thr[i] = (dec((uint8_t)(i ^ mask)) + dec((uint8_t)((i + 1) ^ mask)) + 4) >> 3;
}

static uint8_t enc1(int16_t v, const int thr[127], uint8_t mask) {
  int k = ((int)v + 32768) >> 2, j, lo = 0, hi = 127, neg;
  if (k == 8192) return mask;
  if (k == 0) k = 1; /* FFmpeg: table[0] = table[1] */
  neg = k < 8192;
  j = neg ? 8192 - k : k - 8192;
  /* smallest i with j < thr[i] (thr[127] treated as infinity) */
  while (lo < hi) {
    int mid = (lo + hi) >> 1;
    if (j < thr[mid]) hi = mid;
    else lo = mid + 1;
  }
  return (uint8_t)(neg ? lo ^ (mask ^ 0x80) : lo ^ mask);
}

static void encode(const int16_t *in, size_t n, uint8_t *out, int (*dec)(uint8_t), uint8_t mask) {
  int thr[127];
  size_t i;
  thresholds(dec, mask, thr);
  for (i = 0; i < n; i++) out[i] = enc1(in[i], thr, mask);
}

void wm_ulaw_encode(const int16_t *in, size_t n, uint8_t *out) {
  encode(in, n, out, ulaw2linear, 0xff);
}

void wm_alaw_encode(const int16_t *in, size_t n, uint8_t *out) {
  encode(in, n, out, alaw2linear, 0xd5);
}
