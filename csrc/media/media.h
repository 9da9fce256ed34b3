/* wxhw media engines: pure C (C11, libc only, no Lua), usable in device
 * firmware. Every packer writes into a caller-owned wm_out; every parser of
 * untrusted bytes bounds-checks and reports a reason string on rejection. */
#ifndef WXHW_MEDIA_H
#define WXHW_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

enum { WM_OK = 0, WM_ENOMEM = -1, WM_EINVAL = -2, WM_EBAD = -3 };

/* ---- output: a list of items (packets or frames) in one contiguous buffer -- */
typedef struct wm_meta {
  int64_t ts;      /* RTP timestamp, ms, or sample index, per producer */
  uint32_t flags;  /* WM_F_* */
  uint16_t seq;    /* RTP sequence number / framing sequence */
  uint16_t stream; /* framing stream id */
  uint8_t type;    /* RTP payload type / framing media type / NAL type */
} wm_meta;

enum {
  WM_F_MARKER = 1u << 0,  /* RTP marker set on this packet */
  WM_F_KEY = 1u << 1,     /* item holds a keyframe (IDR/IRAP) */
  WM_F_GAP = 1u << 2,     /* data was lost (or silence filled) before it */
  WM_F_CONFIG = 1u << 3,  /* FLV sequence header tag */
  WM_F_EOS = 1u << 4,     /* end of stream */
};

typedef struct wm_out {
  uint8_t *data;
  size_t len, cap;
  uint32_t *off;   /* off[i]: start of item i; item i ends at off[i+1] or len */
  wm_meta *meta;
  size_t n, ncap;
  /* growth: NULL means fixed capacity (firmware); else realloc-like */
  void *(*grow)(void *ud, void *ptr, size_t size);
  void *ud;
} wm_out;

void wm_out_reset(wm_out *o);
void wm_out_free(wm_out *o);
/* Reserves room for `max` bytes of a new item; returns the write pointer. */
uint8_t *wm_out_begin(wm_out *o, size_t max);
/* Commits the item started by wm_out_begin with its final length. */
int wm_out_commit(wm_out *o, size_t len, const wm_meta *m);
int wm_out_append(wm_out *o, const void *p, size_t len, const wm_meta *m);
static inline size_t wm_out_item_len(const wm_out *o, size_t i) {
  return (i + 1 < o->n ? o->off[i + 1] : o->len) - o->off[i];
}

/* growable byte buffer (state inside parsers); malloc/free based */
typedef struct wm_buf {
  uint8_t *p;
  size_t len, cap;
} wm_buf;
int wm_buf_reserve(wm_buf *b, size_t extra);
int wm_buf_put(wm_buf *b, const void *p, size_t n);
void wm_buf_free(wm_buf *b);

/* ---- Annex-B ------------------------------------------------------------ */
typedef struct wm_nal {
  const uint8_t *p; /* first byte of the NAL header (after the start code) */
  size_t len;       /* trailing zero bytes already trimmed */
} wm_nal;

/* Next NAL at or after *pos; returns 1 and advances *pos, 0 at the end.
 * Bytes before the first start code are skipped. Empty NALs are skipped. */
int wm_annexb_next(const uint8_t *buf, size_t len, size_t *pos, wm_nal *nal);
/* Index of the next start code's 0x01 byte at index >= from + 2, or len. */
size_t wm_annexb_find(const uint8_t *buf, size_t from, size_t len);

enum { WM_H264 = 0, WM_H265 = 1 };
static inline int wm_nal_type(int codec, const uint8_t *nal) {
  return codec == WM_H265 ? (nal[0] >> 1) & 0x3f : nal[0] & 0x1f;
}
int wm_nal_is_key(int codec, int type);   /* IDR (264) / IRAP 16..23 (265) */
int wm_nal_is_vcl(int codec, int type);
int wm_nal_is_param(int codec, int type); /* SPS/PPS(/VPS) */

/* Parameter-set cache and "prepare for WeChat" reorderer: writes one Annex-B
 * access unit per call into `out` (4-byte start codes), dropping AUD/filler,
 * emitting cached VPS→SPS→PPS before every key frame, dropping every frame
 * until the first key frame. Returns items written (0 or 1) or < 0. */
typedef struct wm_reorder {
  int codec, started;
  wm_buf ps[3]; /* VPS, SPS, PPS (H.264: SPS, PPS only) */
} wm_reorder;
void wm_reorder_init(wm_reorder *r, int codec);
void wm_reorder_free(wm_reorder *r);
int wm_reorder_push(wm_reorder *r, const uint8_t *au, size_t len, int64_t ts, wm_out *out);

/* Annex-B -> 4-byte length-prefixed (AVCC/HVCC); returns bytes written or < 0 */
int wm_annexb_to_avcc(const uint8_t *au, size_t len, wm_buf *dst);

/* ---- RTP (RFC 3550) ----------------------------------------------------- */
typedef struct wm_rtp {
  uint8_t padding, extension, cc, marker, pt;
  uint16_t seq;
  uint32_t ts, ssrc;
  uint32_t csrc[15];
  uint16_t ext_profile;
  const uint8_t *ext; /* extension body, ext_len bytes (4 * length words) */
  size_t ext_len;
  const uint8_t *payload;
  size_t payload_len; /* padding removed */
  size_t header_len;
} wm_rtp;

/* Parses a packet; returns WM_OK or WM_EBAD with *why set. */
int wm_rtp_parse(const uint8_t *p, size_t n, wm_rtp *h, const char **why);
/* Writes the 12-byte fixed header (no CSRC, no extension). */
static inline void wm_rtp_put12(uint8_t *p, int marker, int pt, uint16_t seq, uint32_t ts,
                                uint32_t ssrc) {
  p[0] = 0x80;
  p[1] = (uint8_t)((marker ? 0x80 : 0) | (pt & 0x7f));
  p[2] = (uint8_t)(seq >> 8), p[3] = (uint8_t)seq;
  p[4] = (uint8_t)(ts >> 24), p[5] = (uint8_t)(ts >> 16), p[6] = (uint8_t)(ts >> 8), p[7] = (uint8_t)ts;
  p[8] = (uint8_t)(ssrc >> 24), p[9] = (uint8_t)(ssrc >> 16), p[10] = (uint8_t)(ssrc >> 8),
  p[11] = (uint8_t)ssrc;
}
/* Writes a full header incl. CSRC list and extension; returns its length. */
size_t wm_rtp_write(uint8_t *p, const wm_rtp *h);

/* Wrap-aware extension of 16/32-bit counters to 64 bits. */
typedef struct wm_unwrap {
  int started;
  int64_t last;
} wm_unwrap;
int64_t wm_unwrap16(wm_unwrap *u, uint16_t v);
int64_t wm_unwrap32(wm_unwrap *u, uint32_t v);

/* Receiver: bounded reorder window, duplicate/late drop, loss accounting. */
typedef struct wm_rtp_rx {
  size_t window, max_packet;
  uint8_t *slots;     /* window * max_packet bytes */
  uint32_t *slot_len; /* 0 = empty */
  int64_t *slot_seq;
  wm_unwrap seq;
  int started;
  int64_t next;       /* next extended seq to deliver */
  int64_t highest;
  uint32_t ssrc;
  uint64_t received, delivered, lost, duplicates, late, malformed, reordered;
} wm_rtp_rx;
int wm_rtp_rx_init(wm_rtp_rx *rx, size_t window, size_t max_packet);
void wm_rtp_rx_free(wm_rtp_rx *rx);
/* Stores a packet, then delivers every packet that is ready, in order, into
 * `out` (meta.ts = extended seq). Returns packets delivered, WM_EBAD (*why)
 * for a rejected packet, or WM_ENOMEM. */
int wm_rtp_rx_push(wm_rtp_rx *rx, const uint8_t *p, size_t n, wm_out *out, const char **why);
/* Delivers what is ready; with `force`, skips holes (counted lost) and drains
 * everything (end of stream). Returns count or < 0. */
int wm_rtp_rx_pop(wm_rtp_rx *rx, wm_out *out, int force);

/* ---- H.264 / H.265 payloads (RFC 6184 mode 1, RFC 7798) --------------------- */
typedef struct wm_vpack {
  int codec;
  size_t mtu;       /* max RTP packet size incl. the 12-byte header */
  uint8_t pt;
  uint16_t seq;     /* next sequence number */
  uint32_t ssrc;
  int aggregate;    /* STAP-A / AP for consecutive small NALs */
} wm_vpack;
/* Packs one access unit (Annex-B) into RTP packets appended to `out`; marker
 * on the last one. Returns packets written, or < 0. */
int wm_vpack_au(wm_vpack *pk, const uint8_t *au, size_t len, uint32_t ts, wm_out *out);

typedef struct wm_vdepack {
  int codec;
  int wait_key;      /* drop until a key frame (initially and after a loss) */
  int have_seq, have_au, damaged, fu_open;
  uint16_t last_seq;
  uint32_t au_ts;
  size_t fu_start;
  int au_key, au_vcl;
  wm_buf au;
  uint64_t frames, dropped_frames, malformed, gaps;
  const char *why;   /* reason of the last rejection */
} wm_vdepack;
void wm_vdepack_init(wm_vdepack *d, int codec, int wait_key);
void wm_vdepack_free(wm_vdepack *d);
/* Feeds one RTP packet (in sequence order). Complete access units (Annex-B,
 * 4-byte start codes) are appended to `out` with meta.ts = RTP timestamp.
 * Returns frames written (or WM_ENOMEM); a rejected packet sets d->why
 * (NULL otherwise) and damages the access unit it belonged to. */
int wm_vdepack_push(wm_vdepack *d, const uint8_t *pkt, size_t n, wm_out *out);
int wm_vdepack_flush(wm_vdepack *d, wm_out *out);

/* ---- audio payloads ------------------------------------------------------ */
/* Splits/merges a byte stream (G.711: 1 byte = 1 sample) into RTP packets of
 * `samples_per_packet`; marker on the first packet after (re)start. */
typedef struct wm_apack {
  uint8_t pt;
  uint16_t seq;
  uint32_t ssrc, ts;
  size_t ptime_samples;
  int talkspurt;
  wm_buf pending;
} wm_apack;
int wm_g711_pack(wm_apack *a, const uint8_t *p, size_t n, wm_out *out);

/* Opus (RFC 6716 TOC): samples at 48 kHz in the packet, or < 0 if malformed */
int wm_opus_samples(const uint8_t *p, size_t n);
/* One Opus packet per RTP packet, ts advances by its 48 kHz duration. */
int wm_opus_pack(wm_apack *a, const uint8_t *p, size_t n, wm_out *out);

/* AAC: ADTS header parsing, RFC 3640 AAC-hbr packing/unpacking */
typedef struct wm_adts {
  int profile, sf_index, channels, rate;
  size_t header_len, frame_len;
} wm_adts;
int wm_adts_parse(const uint8_t *p, size_t n, wm_adts *h, const char **why);
/* Strips ADTS headers; returns packets written, WM_EBAD (*why) or WM_ENOMEM. */
int wm_aac_pack(wm_apack *a, const uint8_t *adts, size_t n, size_t mtu, wm_out *out,
                const char **why);
/* Depacketises one AAC-hbr RTP payload into raw AUs (meta.ts per AU). */
int wm_aac_unpack(const uint8_t *pkt, size_t n, wm_out *out, const char **why);

/* ---- PCM ----------------------------------------------------------------- */
void wm_ulaw_encode(const int16_t *in, size_t n, uint8_t *out);
void wm_alaw_encode(const int16_t *in, size_t n, uint8_t *out);
void wm_ulaw_decode(const uint8_t *in, size_t n, int16_t *out);
void wm_alaw_decode(const uint8_t *in, size_t n, int16_t *out);

/* 2x resampler (8k<->16k): half-band windowed-sinc FIR (Blackman, 4K-1
 * taps), stateful across calls, group delay removed (output sample 0 lines
 * up with input sample 0); wm_resample_flush emits the tail. */
#define WM_RS_K 16
typedef struct wm_resampler {
  int up; /* 1: 8k->16k, 0: 16k->8k */
  float c[WM_RS_K];
  float ring[4 * WM_RS_K];
  int64_t count; /* input samples consumed */
} wm_resampler;
void wm_resampler_init(wm_resampler *r, int up);
/* Returns samples written to out (room needed: 2n up, n/2 + 1 down). */
size_t wm_resample(wm_resampler *r, const int16_t *in, size_t n, int16_t *out);
/* Room needed: 2K up, K down. */
size_t wm_resample_flush(wm_resampler *r, int16_t *out);

/* Exact-duration framer for S16LE PCM with silence fill for gaps. */
typedef struct wm_framer {
  unsigned rate, channels, frame_samples;
  int64_t next;          /* sample index of the next sample to store */
  int started;
  size_t fill;           /* bytes in `buf` */
  uint8_t *buf;          /* frame_samples * channels * 2 */
  int64_t max_gap;       /* samples: larger gaps restart instead of filling */
  int pending_gap;
  uint64_t filled_samples, dropped_samples;
} wm_framer;
int wm_framer_init(wm_framer *f, unsigned rate, unsigned channels, unsigned ms);
void wm_framer_free(wm_framer *f);
/* `at` = sample index of data[0], or -1 to continue. Frames (meta.ts = sample
 * index, WM_F_GAP when silence was inserted) go to `out`. */
int wm_framer_push(wm_framer *f, const uint8_t *data, size_t n, int64_t at, wm_out *out);
int wm_framer_flush(wm_framer *f, wm_out *out); /* pads the tail with silence */

/* ---- device framing (docs/framing.md) -------------------------------------- */
#define WM_FRAME_MAGIC 0x57
#define WM_FRAME_VERSION 1
#define WM_FRAME_HDR 16
typedef struct wm_frame_hdr {
  uint8_t type, flags;
  uint16_t stream, seq;
  uint32_t ts_ms, len;
} wm_frame_hdr;
void wm_frame_put_header(uint8_t *p, const wm_frame_hdr *h);
typedef struct wm_deframer {
  uint32_t max_len;
  uint8_t hdr[WM_FRAME_HDR];
  size_t hfill;
  wm_frame_hdr cur;
  wm_buf body;
  int failed;
  const char *why;
} wm_deframer;
void wm_deframer_init(wm_deframer *d, uint32_t max_len);
void wm_deframer_free(wm_deframer *d);
/* Feeds bytes; complete frames go to `out` (meta: ts, flags, seq, stream,
 * type). Returns frames written or WM_EBAD (stream is then unusable). */
int wm_deframer_push(wm_deframer *d, const uint8_t *p, size_t n, wm_out *out);

/* ---- FLV ------------------------------------------------------------------ */
enum { WM_FLV_H265_CODECID12 = 0, WM_FLV_H265_ENHANCED = 1 };
typedef struct wm_flv {
  int video_codec, hevc_flavour;
  wm_buf ps[3];     /* cached VPS/SPS/PPS of the last sequence header */
  int have_vseq, have_aseq;
  uint8_t asc[2];
  wm_buf tmp;
  int64_t last_dts;
} wm_flv;
void wm_flv_init(wm_flv *f, int video_codec, int hevc_flavour);
void wm_flv_free(wm_flv *f);
int wm_flv_header(wm_out *out, int audio, int video);
/* One access unit (Annex-B); writes a sequence header tag first when the
 * parameter sets are new or changed. Returns tags written or < 0. */
int wm_flv_video(wm_flv *f, const uint8_t *au, size_t len, uint32_t dts_ms, int32_t cts_ms,
                 wm_out *out, const char **why);
/* One or more ADTS frames; each becomes a raw AAC tag, ts advancing by 1024
 * samples. Returns tags written or < 0. */
int wm_flv_aac(wm_flv *f, const uint8_t *adts, size_t len, uint32_t ts_ms, wm_out *out,
               const char **why);
/* Reader: walks tags; returns WM_OK and the next tag, 0 at end (needs more),
 * WM_EBAD on malformed input. */
typedef struct wm_flv_tag {
  uint8_t type;
  uint32_t ts;
  const uint8_t *data;
  size_t len;
} wm_flv_tag;
int wm_flv_read(const uint8_t *p, size_t n, size_t *pos, wm_flv_tag *t, const char **why);

/* ---- SPS parsing (for decoder configuration records) ---------------------- */
typedef struct wm_sps_info {
  int profile, constraints, level, chroma_format, bit_depth_luma, bit_depth_chroma;
} wm_sps_info;
int wm_h264_sps_parse(const uint8_t *nal, size_t len, wm_sps_info *s);
/* Builds an AVCDecoderConfigurationRecord / HEVCDecoderConfigurationRecord. */
int wm_avcc_record(const uint8_t *sps, size_t sps_len, const uint8_t *pps, size_t pps_len,
                   wm_buf *dst);
int wm_hvcc_record(const uint8_t *vps, size_t vps_len, const uint8_t *sps, size_t sps_len,
                   const uint8_t *pps, size_t pps_len, wm_buf *dst);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
