/* Annex-B scanner and everything fed by it: packetisers, reorderer, AVCC
 * conversion, FLV video muxing (SPS parsing), for H.264 and H.265. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wm_out o;
  wm_buf b = {0};
  int codec, flavour;
  volatile unsigned sink = 0;
  const char *why;
  if (size < 1) return 0;
  codec = data[0] & 1;
  flavour = (data[0] >> 2) & 1;
  {
    wm_vpack pk = {codec, 12 + 3 + (data[0] >> 1), 96, 0, 1, data[0] & 2};
    wm_reorder r;
    wm_flv f;
    size_t pos = 0;
    wm_nal nal;
    data++, size--;
    fz_out(&o);
    while (wm_annexb_next(data, size, &pos, &nal)) sink += nal.p[0] + (unsigned)nal.len;
    wm_vpack_au(&pk, data, size, 0, &o);
    wm_reorder_init(&r, codec);
    wm_reorder_push(&r, data, size, 0, &o);
    wm_reorder_free(&r);
    wm_annexb_to_avcc(data, size, &b);
    wm_flv_init(&f, codec, flavour);
    wm_flv_video(&f, data, size, 0, 0, &o, &why);
    wm_flv_video(&f, data, size, 40, 0, &o, &why);
    wm_flv_free(&f);
    sink += fz_touch(&o);
  }
  wm_buf_free(&b);
  wm_out_free(&o);
  (void)sink;
  return 0;
}
