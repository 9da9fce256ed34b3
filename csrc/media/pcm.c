/* Exact-duration PCM framer (S16LE). Input arrives in any chunk size, with
 * an optional sample position; frames of exactly `frame_samples` leave in
 * order. A forward jump up to `max_gap` is filled with silence (frame gets
 * WM_F_GAP); a larger jump or a step back restarts framing at the new
 * position (the partial frame is padded and emitted first); data overlapping
 * what was already framed is dropped. */
#include <stdlib.h>
#include <string.h>

#include "media.h"

int wm_framer_init(wm_framer *f, unsigned rate, unsigned channels, unsigned ms) {
  memset(f, 0, sizeof *f);
  if (rate < 1000 || rate > 192000 || channels < 1 || channels > 8 || ms < 1 || ms > 1000)
    return WM_EINVAL;
  if ((uint64_t)rate * ms % 1000) return WM_EINVAL;
  f->rate = rate, f->channels = channels;
  f->frame_samples = rate * ms / 1000;
  f->max_gap = rate; /* 1 s */
  f->buf = malloc((size_t)f->frame_samples * channels * 2);
  return f->buf ? WM_OK : WM_ENOMEM;
}

void wm_framer_free(wm_framer *f) {
  free(f->buf);
  f->buf = NULL;
}

static size_t frame_bytes(const wm_framer *f) { return (size_t)f->frame_samples * f->channels * 2; }

static int put(wm_framer *f, const uint8_t *p, size_t n, int gap, wm_out *out, int *count) {
  size_t fb = frame_bytes(f);
  while (n > 0) {
    size_t take = fb - f->fill;
    if (take > n) take = n;
    if (p) memcpy(f->buf + f->fill, p, take), p += take;
    else memset(f->buf + f->fill, 0, take);
    f->fill += take, n -= take;
    f->next += (int64_t)(take / (2 * f->channels));
    if (gap) f->pending_gap = 1;
    if (f->fill == fb) {
      wm_meta m = {0};
      m.ts = f->next - f->frame_samples;
      m.flags = f->pending_gap ? WM_F_GAP : 0;
      if (wm_out_append(out, f->buf, fb, &m)) return WM_ENOMEM;
      f->fill = 0;
      f->pending_gap = 0;
      (*count)++;
    }
  }
  return WM_OK;
}

int wm_framer_push(wm_framer *f, const uint8_t *data, size_t n, int64_t at, wm_out *out) {
  int count = 0;
  size_t ss = 2u * f->channels;
  n -= n % ss; /* whole samples only */
  if (!f->started) {
    f->started = 1;
    f->next = at >= 0 ? at : 0;
  }
  if (at >= 0 && at != f->next) {
    int64_t d = at - f->next;
    if (d > 0 && d <= f->max_gap) {
      f->filled_samples += (uint64_t)d;
      if (put(f, NULL, (size_t)d * ss, 1, out, &count)) return WM_ENOMEM;
    } else if (d < 0 && -d <= f->max_gap) {
      /* overlaps what was framed already: drop the overlapping part */
      size_t drop = (size_t)-d < n / ss ? (size_t)-d : n / ss;
      f->dropped_samples += drop;
      data += drop * ss, n -= drop * ss;
      if (n == 0) return 0;
    } else {
      /* restart: pad and emit the partial frame, continue at `at` */
      if (f->fill && put(f, NULL, frame_bytes(f) - f->fill, 0, out, &count)) return WM_ENOMEM;
      f->next = at;
      f->pending_gap = 1;
    }
  }
  if (put(f, data, n, 0, out, &count)) return WM_ENOMEM;
  return count;
}

int wm_framer_flush(wm_framer *f, wm_out *out) {
  int count = 0;
  if (f->fill && put(f, NULL, frame_bytes(f) - f->fill, 0, out, &count)) return WM_ENOMEM;
  return count;
}
