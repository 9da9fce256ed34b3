/* Minimal SPS parsing (EPBs removed) and decoder configuration records. */
#include <string.h>

#include "media.h"

typedef struct {
  const uint8_t *p;
  size_t n, bit; /* n in bytes */
  int err;
  uint8_t rbsp[128]; /* the first bytes of the RBSP are all we need */
} bits;

static void bits_init(bits *b, const uint8_t *nal, size_t len) {
  size_t i, o = 0;
  int zeros = 0;
  for (i = 0; i < len && o < sizeof b->rbsp; i++) {
    if (zeros >= 2 && nal[i] == 3) { /* emulation prevention byte */
      zeros = 0;
      continue;
    }
    zeros = nal[i] == 0 ? zeros + 1 : 0;
    b->rbsp[o++] = nal[i];
  }
  b->p = b->rbsp, b->n = o, b->bit = 0, b->err = 0;
}

static unsigned u1(bits *b) {
  unsigned v;
  if (b->bit >= b->n * 8) return b->err = 1, 0;
  v = (b->p[b->bit >> 3] >> (7 - (b->bit & 7))) & 1;
  b->bit++;
  return v;
}

static unsigned ubits(bits *b, int n) {
  unsigned v = 0;
  while (n-- > 0) v = v << 1 | u1(b);
  return v;
}

static unsigned ue(bits *b) {
  int lz = 0;
  while (!u1(b) && !b->err)
    if (++lz > 31) return b->err = 1, 0;
  return ((1u << lz) - 1) + ubits(b, lz);
}

/* An Exp-Golomb value that must not exceed max; larger ones (up to 2^32-2 in
 * hostile input) are an error, never converted to int. */
static int ue_max(bits *b, unsigned max) {
  unsigned v = ue(b);
  if (v > max) return b->err = 1, 0;
  return (int)v;
}

int wm_h264_sps_parse(const uint8_t *nal, size_t len, wm_sps_info *s) {
  bits b;
  int p;
  if (len < 4 || (nal[0] & 0x1f) != 7) return WM_EBAD;
  memset(s, 0, sizeof *s);
  s->profile = nal[1], s->constraints = nal[2], s->level = nal[3];
  s->chroma_format = 1, s->bit_depth_luma = 8, s->bit_depth_chroma = 8;
  bits_init(&b, nal + 4, len - 4);
  (void)ue(&b); /* seq_parameter_set_id */
  p = s->profile;
  if (p == 100 || p == 110 || p == 122 || p == 244 || p == 44 || p == 83 || p == 86 ||
      p == 118 || p == 128 || p == 138 || p == 139 || p == 134 || p == 135) {
    s->chroma_format = ue_max(&b, 3);
    if (s->chroma_format == 3) (void)u1(&b);
    s->bit_depth_luma = ue_max(&b, 6) + 8;
    s->bit_depth_chroma = ue_max(&b, 6) + 8;
  }
  if (b.err) return WM_EBAD;
  return WM_OK;
}

int wm_avcc_record(const uint8_t *sps, size_t sps_len, const uint8_t *pps, size_t pps_len,
                   wm_buf *dst) {
  wm_sps_info s;
  uint8_t h[8];
  if (sps_len > 65535 || pps_len > 65535 || wm_h264_sps_parse(sps, sps_len, &s)) return WM_EBAD;
  h[0] = 1, h[1] = sps[1], h[2] = sps[2], h[3] = sps[3], h[4] = 0xff, h[5] = 0xe1;
  h[6] = (uint8_t)(sps_len >> 8), h[7] = (uint8_t)sps_len;
  if (wm_buf_put(dst, h, 8) || wm_buf_put(dst, sps, sps_len)) return WM_ENOMEM;
  h[0] = 1, h[1] = (uint8_t)(pps_len >> 8), h[2] = (uint8_t)pps_len;
  if (wm_buf_put(dst, h, 3) || wm_buf_put(dst, pps, pps_len)) return WM_ENOMEM;
  if (s.profile == 100 || s.profile == 110 || s.profile == 122 || s.profile == 144) {
    h[0] = (uint8_t)(0xfc | s.chroma_format);
    h[1] = (uint8_t)(0xf8 | (s.bit_depth_luma - 8));
    h[2] = (uint8_t)(0xf8 | (s.bit_depth_chroma - 8));
    h[3] = 0;
    if (wm_buf_put(dst, h, 4)) return WM_ENOMEM;
  }
  return WM_OK;
}

/* H.265 SPS fields for the HEVCDecoderConfigurationRecord. */
typedef struct {
  uint8_t ptl[12]; /* space/tier/profile, compat(4), constraints(6), level */
  int sub_layers, nesting, chroma, bd_luma, bd_chroma;
} hevc_sps;

static int h265_sps_parse(const uint8_t *nal, size_t len, hevc_sps *s) {
  bits b;
  int i, max_sub, prof[8] = {0}, lev[8] = {0};
  if (len < 15 || ((nal[0] >> 1) & 0x3f) != 33) return WM_EBAD;
  bits_init(&b, nal + 2, len - 2);
  (void)ubits(&b, 4);
  max_sub = (int)ubits(&b, 3);
  s->sub_layers = max_sub + 1;
  s->nesting = (int)u1(&b);
  if (b.n < 13) return WM_EBAD;
  memcpy(s->ptl, b.rbsp + 1, 12);
  b.bit = 13 * 8;
  for (i = 0; i < max_sub; i++) prof[i] = (int)u1(&b), lev[i] = (int)u1(&b);
  if (max_sub > 0)
    for (i = max_sub; i < 8; i++) (void)ubits(&b, 2);
  for (i = 0; i < max_sub; i++) {
    if (prof[i]) b.bit += 88;
    if (lev[i]) b.bit += 8;
  }
  (void)ue(&b); /* sps_seq_parameter_set_id */
  s->chroma = ue_max(&b, 3);
  if (s->chroma == 3) (void)u1(&b);
  (void)ue(&b), (void)ue(&b); /* width, height */
  if (u1(&b)) (void)ue(&b), (void)ue(&b), (void)ue(&b), (void)ue(&b);
  s->bd_luma = ue_max(&b, 8);
  s->bd_chroma = ue_max(&b, 8);
  if (b.err) return WM_EBAD;
  return WM_OK;
}

int wm_hvcc_record(const uint8_t *vps, size_t vps_len, const uint8_t *sps, size_t sps_len,
                   const uint8_t *pps, size_t pps_len, wm_buf *dst) {
  hevc_sps s;
  uint8_t h[23];
  const uint8_t *nals[3] = {vps, sps, pps};
  size_t lens[3] = {vps_len, sps_len, pps_len};
  int i;
  if (!vps || !pps || vps_len > 65535 || sps_len > 65535 || pps_len > 65535) return WM_EBAD;
  if (h265_sps_parse(sps, sps_len, &s)) return WM_EBAD;
  h[0] = 1;
  memcpy(h + 1, s.ptl, 12);
  h[13] = 0xf0, h[14] = 0x00;     /* min_spatial_segmentation_idc = 0 */
  h[15] = 0xfc;                   /* parallelismType = 0 (unknown) */
  h[16] = (uint8_t)(0xfc | s.chroma);
  h[17] = (uint8_t)(0xf8 | s.bd_luma);
  h[18] = (uint8_t)(0xf8 | s.bd_chroma);
  h[19] = h[20] = 0;              /* avgFrameRate unspecified */
  h[21] = (uint8_t)((s.sub_layers & 7) << 3 | (s.nesting & 1) << 2 | 3);
  h[22] = 3;                      /* arrays: VPS, SPS, PPS */
  if (wm_buf_put(dst, h, sizeof h)) return WM_ENOMEM;
  for (i = 0; i < 3; i++) {
    uint8_t a[5];
    a[0] = (uint8_t)(32 + i); /* array_completeness 0, as FFmpeg writes for FLV */
    a[1] = 0, a[2] = 1;
    a[3] = (uint8_t)(lens[i] >> 8), a[4] = (uint8_t)lens[i];
    if (wm_buf_put(dst, a, 5) || wm_buf_put(dst, nals[i], lens[i])) return WM_ENOMEM;
  }
  return WM_OK;
}
