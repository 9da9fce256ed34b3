/* Audio payload parsers: AAC-hbr unpack, Opus TOC, ADTS -> FLV and RTP. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wm_out o;
  const uint8_t *pkt;
  size_t len;
  const char *why;
  volatile unsigned sink = 0;
  wm_flv f;
  wm_apack a;
  fz_out(&o);
  wm_flv_init(&f, WM_H264, 0);
  memset(&a, 0, sizeof a);
  a.ptime_samples = 160;
  while (fz_next(&data, &size, &pkt, &len)) {
    wm_out_reset(&o);
    wm_aac_unpack(pkt, len, &o, &why);
    sink += (unsigned)wm_opus_samples(pkt, len);
    wm_flv_aac(&f, pkt, len, 0, &o, &why);
    wm_aac_pack(&a, pkt, len, 200, &o, &why);
    wm_g711_pack(&a, pkt, len, &o);
    sink += fz_touch(&o);
  }
  wm_buf_free(&a.pending);
  wm_flv_free(&f);
  wm_out_free(&o);
  (void)sink;
  return 0;
}
