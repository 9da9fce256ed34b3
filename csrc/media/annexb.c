/* Annex-B start-code scanning (memchr for 0x01, then look back two bytes),
 * NAL classification, Annex-B -> length-prefixed conversion. */
#include <string.h>

#include "media.h"

size_t wm_annexb_find(const uint8_t *buf, size_t from, size_t len) {
  size_t i;
  if (len < 3 || from > len - 3) return len;
  i = from + 2;
  while (i < len) {
    const uint8_t *q = memchr(buf + i, 0x01, len - i);
    if (!q) return len;
    i = (size_t)(q - buf);
    if (buf[i - 1] == 0 && buf[i - 2] == 0) return i;
    i += 3; /* b[i] is 0x01, so the next 0x01 preceded by two zeros is >= i+3 */
  }
  return len;
}

int wm_annexb_next(const uint8_t *buf, size_t len, size_t *pos, wm_nal *nal) {
  while (*pos < len) {
    size_t s = wm_annexb_find(buf, *pos, len), start, e, end;
    if (s >= len) {
      *pos = len;
      return 0;
    }
    start = s + 1;
    e = wm_annexb_find(buf, start, len);
    end = e >= len ? len : e - 2;
    *pos = end;
    while (end > start && buf[end - 1] == 0) end--;
    if (end > start) {
      nal->p = buf + start;
      nal->len = end - start;
      return 1;
    }
  }
  return 0;
}

int wm_nal_is_key(int codec, int t) {
  return codec == WM_H265 ? (t >= 16 && t <= 23) : t == 5;
}

int wm_nal_is_vcl(int codec, int t) {
  return codec == WM_H265 ? t < 32 : (t >= 1 && t <= 5);
}

int wm_nal_is_param(int codec, int t) {
  return codec == WM_H265 ? (t >= 32 && t <= 34) : (t == 7 || t == 8);
}

int wm_annexb_to_avcc(const uint8_t *au, size_t len, wm_buf *dst) {
  size_t pos = 0, before = dst->len;
  wm_nal nal;
  while (wm_annexb_next(au, len, &pos, &nal)) {
    uint8_t l[4];
    if (nal.len > UINT32_MAX) return WM_EINVAL;
    l[0] = (uint8_t)(nal.len >> 24), l[1] = (uint8_t)(nal.len >> 16);
    l[2] = (uint8_t)(nal.len >> 8), l[3] = (uint8_t)nal.len;
    if (wm_buf_put(dst, l, 4) || wm_buf_put(dst, nal.p, nal.len)) return WM_ENOMEM;
  }
  return (int)(dst->len - before > INT32_MAX ? INT32_MAX : dst->len - before);
}
