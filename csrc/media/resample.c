/* 8 kHz <-> 16 kHz by a half-band FIR. Up: even outputs are the input
 * samples, odd outputs y(m+1/2) = sum c_i (x[m-i] + x[m+1+i]). Down: z[n] =
 * x[2n]/2 + sum c_i/2 (x[2n-2i-1] + x[2n+2i+1]). The ring holds the last 4K
 * input samples (zeros before the start). */
#include <string.h>

#include "media.h"

#define K WM_RS_K
#define R (4 * K)
#define PI 3.14159265358979323846

/* sin for the coefficient set-up only; avoids a libm dependency (firmware) */
static double sine(double x) {
  double term, sum;
  int i;
  while (x > PI) x -= 2 * PI;
  while (x < -PI) x += 2 * PI;
  term = sum = x;
  for (i = 1; i < 12; i++) {
    term *= -x * x / ((2 * i) * (2 * i + 1));
    sum += term;
  }
  return sum;
}
static double cosine(double x) { return sine(x + PI / 2); }

void wm_resampler_init(wm_resampler *r, int up) {
  double sum = 0;
  int i;
  memset(r, 0, sizeof *r);
  r->up = up;
  for (i = 0; i < K; i++) {
    double t = i + 0.5, off = 2 * i + 1;
    double w = 0.42 + 0.5 * cosine(PI * off / (2 * K)) + 0.08 * cosine(2 * PI * off / (2 * K));
    r->c[i] = (float)(w * sine(PI * t) / (PI * t));
    sum += 2 * r->c[i];
  }
  for (i = 0; i < K; i++) r->c[i] = (float)(r->c[i] / sum);
}

static int16_t sat(float v) {
  v = v < 0 ? v - 0.5f : v + 0.5f;
  if (v > 32767.f) return 32767;
  if (v < -32768.f) return -32768;
  return (int16_t)v;
}

/* x(j) = input sample j relative to the newest (j = 0 newest, 1 older ...) */
#define X(j) r->ring[R - 1 - (j)]

static size_t step(wm_resampler *r, float s, int16_t *out) {
  size_t n = 0;
  int i;
  memmove(r->ring, r->ring + 1, (R - 1) * sizeof *r->ring);
  r->ring[R - 1] = s;
  r->count++;
  if (r->up) {
    /* newest is x[m+K]: centre m is K samples back */
    float acc = 0;
    if (r->count <= K) return 0;
    for (i = 0; i < K; i++) acc += r->c[i] * (X(K + i) + X(K - 1 - i));
    out[n++] = sat(X(K));
    out[n++] = sat(acc);
  } else {
    /* newest is x[2n + 2K - 1]; emit when the centre index 2n is even, >= 0 */
    int64_t centre = r->count - 1 - (2 * K - 1);
    float acc;
    if (centre < 0 || (centre & 1)) return 0;
    acc = 0.5f * X(2 * K - 1);
    for (i = 0; i < K; i++) acc += 0.5f * r->c[i] * (X(2 * K - 1 + 2 * i + 1) + X(2 * K - 1 - 2 * i - 1));
    out[n++] = sat(acc);
  }
  return n;
}

size_t wm_resample(wm_resampler *r, const int16_t *in, size_t n, int16_t *out) {
  size_t i, w = 0;
  for (i = 0; i < n; i++) w += step(r, (float)in[i], out + w);
  return w;
}

size_t wm_resample_flush(wm_resampler *r, int16_t *out) {
  size_t w = 0;
  int i, pad = r->up ? K : 2 * K - 1;
  for (i = 0; i < pad; i++) w += step(r, 0.f, out + w);
  wm_resampler_init(r, r->up); /* end of stream: ready for a new one */
  return w;
}
