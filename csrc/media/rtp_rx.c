/* RTP receiver: reorder window of `window` slots keyed by extended sequence
 * number; duplicates and packets older than the delivery point are dropped;
 * holes are skipped (and counted lost) only when the window overflows or on
 * a forced drain. A jump further than 3000 (RFC 3550 A.1 MAX_DROPOUT) restarts. */
#include <stdlib.h>
#include <string.h>

#include "media.h"

#define MAX_DROPOUT 3000

int wm_rtp_rx_init(wm_rtp_rx *rx, size_t window, size_t max_packet) {
  memset(rx, 0, sizeof *rx);
  if (window < 1 || window > 4096 || max_packet < 12 || max_packet > 65536) return WM_EINVAL;
  rx->window = window, rx->max_packet = max_packet;
  rx->slots = malloc(window * max_packet);
  rx->slot_len = calloc(window, sizeof *rx->slot_len);
  rx->slot_seq = calloc(window, sizeof *rx->slot_seq);
  if (!rx->slots || !rx->slot_len || !rx->slot_seq) {
    wm_rtp_rx_free(rx);
    return WM_ENOMEM;
  }
  return WM_OK;
}

void wm_rtp_rx_free(wm_rtp_rx *rx) {
  free(rx->slots), free(rx->slot_len), free(rx->slot_seq);
  rx->slots = NULL, rx->slot_len = NULL, rx->slot_seq = NULL;
}

static int deliver_next(wm_rtp_rx *rx, wm_out *out, int force);

static size_t slot_of(const wm_rtp_rx *rx, int64_t es) {
  int64_t w = (int64_t)rx->window, m = es % w;
  return (size_t)(m < 0 ? m + w : m);
}

static void reset_window(wm_rtp_rx *rx, int64_t next) {
  memset(rx->slot_len, 0, rx->window * sizeof *rx->slot_len);
  rx->next = next;
  rx->highest = next - 1;
}

int wm_rtp_rx_push(wm_rtp_rx *rx, const uint8_t *p, size_t n, wm_out *out, const char **why) {
  wm_rtp h;
  int64_t es;
  size_t slot;
  int delivered, before = (int)out->n;
  if (n > rx->max_packet) {
    rx->malformed++;
    return *why = "packet larger than the receiver's max_packet", WM_EBAD;
  }
  if (wm_rtp_parse(p, n, &h, why) != WM_OK) {
    rx->malformed++;
    return WM_EBAD;
  }
  rx->received++;
  if (!rx->started || h.ssrc != rx->ssrc) {
    rx->started = 1;
    rx->ssrc = h.ssrc;
    memset(&rx->seq, 0, sizeof rx->seq);
    es = wm_unwrap16(&rx->seq, h.seq);
    reset_window(rx, es);
  } else {
    es = wm_unwrap16(&rx->seq, h.seq);
    if (es - rx->next > MAX_DROPOUT || rx->next - es > MAX_DROPOUT) {
      /* sender restarted or jumped: drain what we hold, resynchronise */
      if (wm_rtp_rx_pop(rx, out, 1) < 0) return WM_ENOMEM;
      reset_window(rx, es);
    }
  }
  if (es < rx->next) {
    rx->late++;
    return 0;
  }
  slot = slot_of(rx, es);
  if (rx->slot_len[slot] && rx->slot_seq[slot] == es) {
    rx->duplicates++;
    return 0;
  }
  if (es < rx->highest) rx->reordered++;
  /* beyond the window: deliver (or count lost) the oldest slots first */
  while (es - rx->next >= (int64_t)rx->window)
    if (deliver_next(rx, out, 1) < 0) return WM_ENOMEM;
  delivered = (int)out->n - before;
  memcpy(rx->slots + slot * rx->max_packet, p, n);
  rx->slot_len[slot] = (uint32_t)n;
  rx->slot_seq[slot] = es;
  if (es > rx->highest) rx->highest = es;
  {
    int r = wm_rtp_rx_pop(rx, out, 0);
    return r < 0 ? r : r + delivered;
  }
}

/* Delivers or skips rx->next; returns 1 delivered, 0 skipped/hole, < 0 error. */
static int deliver_next(wm_rtp_rx *rx, wm_out *out, int force) {
  size_t s = slot_of(rx, rx->next);
  if (rx->slot_len[s] && rx->slot_seq[s] == rx->next) {
    wm_meta m = {0};
    m.ts = rx->next;
    m.seq = (uint16_t)rx->next;
    if (wm_out_append(out, rx->slots + s * rx->max_packet, rx->slot_len[s], &m)) return WM_ENOMEM;
    rx->slot_len[s] = 0;
    rx->delivered++;
    rx->next++;
    return 1;
  }
  if (!force) return 2; /* hole: wait */
  rx->lost++;
  rx->next++;
  return 0;
}

int wm_rtp_rx_pop(wm_rtp_rx *rx, wm_out *out, int force) {
  int count = 0;
  if (!rx->started) return 0;
  while (rx->next <= rx->highest) {
    /* a hole is given up once the window is otherwise full */
    int r = deliver_next(rx, out, force || rx->highest - rx->next >= (int64_t)rx->window - 1);
    if (r < 0) return r;
    if (r == 2) break;
    count += r;
  }
  return count;
}
