/* RTP receiver (reorder window) -> H.264 / H.265 depacketiser. The first
 * input byte picks the codec and window; the rest is length-prefixed packets. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wm_rtp_rx rx;
  wm_vdepack d;
  wm_out ordered, frames;
  const uint8_t *pkt;
  size_t len, i;
  volatile unsigned sink = 0;
  const char *why;
  if (size < 1) return 0;
  if (wm_rtp_rx_init(&rx, 1 + (data[0] >> 2), 1500) != WM_OK) return 0;
  wm_vdepack_init(&d, data[0] & 1, (data[0] >> 1) & 1);
  fz_out(&ordered), fz_out(&frames);
  data++, size--;
  while (fz_next(&data, &size, &pkt, &len)) {
    wm_out_reset(&ordered);
    if (wm_rtp_rx_push(&rx, pkt, len, &ordered, &why) < 0) continue;
    for (i = 0; i < ordered.n; i++) {
      wm_out_reset(&frames);
      wm_vdepack_push(&d, ordered.data + ordered.off[i], wm_out_item_len(&ordered, i), &frames);
      sink += fz_touch(&frames);
    }
  }
  wm_out_reset(&ordered);
  wm_rtp_rx_pop(&rx, &ordered, 1);
  for (i = 0; i < ordered.n; i++)
    wm_vdepack_push(&d, ordered.data + ordered.off[i], wm_out_item_len(&ordered, i), &frames);
  wm_vdepack_flush(&d, &frames);
  sink += fz_touch(&frames);
  wm_out_free(&ordered), wm_out_free(&frames);
  wm_vdepack_free(&d);
  wm_rtp_rx_free(&rx);
  (void)sink;
  return 0;
}
