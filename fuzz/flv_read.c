/* FLV tag reader. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t pos = 0;
  wm_flv_tag t;
  const char *why;
  volatile unsigned sink = 0;
  while (wm_flv_read(data, size, &pos, &t, &why) == 1) {
    size_t i;
    for (i = 0; i < t.len; i++) sink += t.data[i];
    sink += t.ts + t.type;
  }
  (void)sink;
  return 0;
}
