/* ADTS header (ISO/IEC 13818-7 / 14496-3): 7 bytes, 9 with CRC. */
#include "media.h"

static const int rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                              22050, 16000, 12000, 11025, 8000,  7350};

int wm_adts_parse(const uint8_t *p, size_t n, wm_adts *h, const char **why) {
  if (n < 7) return *why = "ADTS: truncated header", WM_EBAD;
  if (p[0] != 0xff || (p[1] & 0xf6) != 0xf0) return *why = "ADTS: bad sync word or layer", WM_EBAD;
  h->header_len = (p[1] & 1) ? 7 : 9;
  h->profile = p[2] >> 6;
  h->sf_index = (p[2] >> 2) & 0x0f;
  h->channels = ((p[2] & 1) << 2) | (p[3] >> 6);
  h->frame_len = (size_t)((p[3] & 3) << 11 | p[4] << 3 | p[5] >> 5);
  if (h->sf_index > 12) return *why = "ADTS: reserved sampling frequency index", WM_EBAD;
  h->rate = rates[h->sf_index];
  if (h->channels == 0) return *why = "ADTS: channel configuration 0 (PCE) is not supported", WM_EBAD;
  if ((p[6] & 3) != 0) return *why = "ADTS: several raw data blocks per frame are not supported", WM_EBAD;
  if (h->frame_len < h->header_len + 1) return *why = "ADTS: frame length shorter than its header", WM_EBAD;
  if (h->frame_len > n) return *why = "ADTS: frame length runs past the end of the input", WM_EBAD;
  return WM_OK;
}
