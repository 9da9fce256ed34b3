/* Device-framing decoder fed in chunks whose sizes come from the input. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wm_deframer d;
  wm_out o;
  volatile unsigned sink = 0;
  if (size < 1) return 0;
  wm_deframer_init(&d, 1u << (data[0] & 15));
  fz_out(&o);
  data++, size--;
  while (size > 0) {
    size_t step = 1 + (data[0] % 64);
    if (step > size) step = size;
    wm_out_reset(&o);
    if (wm_deframer_push(&d, data, step, &o) < 0) break;
    sink += fz_touch(&o);
    data += step, size -= step;
  }
  wm_deframer_free(&d);
  wm_out_free(&o);
  (void)sink;
  return 0;
}
