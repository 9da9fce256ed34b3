/* WXBizMsgCrypt engine (wxhw.crypto.msgcrypt_engine): one C call opens a push
 * (msg_signature over the sorted four strings, constant-time compare, strict
 * base64, AES-256-CBC, padding 1..32, length bound, receive_id) and one seals
 * a reply (random prefix + nonce, framing, padding, AES, base64, signature).
 * Per push, the Lua version made ~10 C calls and ~12 strings; a per-config
 * userdata keeps the keyed cipher contexts, so no key schedule or algorithm
 * lookup is repeated. lua/wxhw/msgcrypt.lua keeps the API and error codes. */
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "wire.h"

#define ENGINE_CLASS "wxhw.MsgCryptEngine"
#define SIG_HEX 40
#define MSG_MAX_INPUT 0x3fffffff /* keeps every size below int and its sums from wrapping */

#define POOL_PAGE 4096

typedef struct {
  size_t left;  /* unread bytes at the start of bytes[]; 0 in a forked child */
  pid_t pid;    /* owner, checked only without MADV_WIPEONFORK */
  unsigned char bytes[POOL_PAGE - 64];
} rand_pool;
typedef char pool_fits_its_page[sizeof(rand_pool) <= POOL_PAGE ? 1 : -1];

typedef struct {
  EVP_CIPHER_CTX *enc, *dec; /* keyed once, never re-initialised (see aes_cbc) */
  unsigned char enc_chain[16], dec_chain[16]; /* each context's CBC state: the
                                                 last ciphertext block it saw */
  EVP_MD_CTX *md;
  EVP_MD *sha1;
  unsigned char *scratch; /* grown on demand, wiped and freed on close */
  size_t cap;
  char *json; /* a reply table's JSON (seal_json), grown likewise */
  size_t json_cap;
  unsigned char iv[16];
  char *token, *rid; /* one allocation, wiped on close */
  size_t token_len, rid_len;
  /* RAND_bytes costs ~1 us per call whatever the size (DRBG set-up), more
   * than the rest of a seal: replies take their 26 random bytes from a pool
   * refilled a few KiB at a time, consumed bytes wiped. A forked child must
   * never reuse the parent's bytes: the pool is a page of its own marked
   * MADV_WIPEONFORK, so a child finds it zeroed (left = 0) and refills, at no
   * cost per draw (a getpid() check was a syscall per reply). Where the
   * kernel lacks it, the pool falls back to that pid check. */
  rand_pool *pool;
  int wipe_on_fork; /* outside the page: an engine made before a fork (nginx
                       init_by_lua) keeps knowing its children find it zeroed */
} engine;

typedef struct {
  const char *s;
  size_t n;
} span;

static void engine_free(engine *e) {
  EVP_CIPHER_CTX_free(e->enc); /* frees the key schedule with its context */
  EVP_CIPHER_CTX_free(e->dec);
  EVP_MD_CTX_free(e->md);
  EVP_MD_free(e->sha1);
  if (e->scratch) OPENSSL_clear_free(e->scratch, e->cap);
  if (e->json) OPENSSL_clear_free(e->json, e->json_cap);
  if (e->token) OPENSSL_clear_free(e->token, e->token_len + e->rid_len);
  OPENSSL_cleanse(e->iv, sizeof e->iv);
  if (e->pool) {
    OPENSSL_cleanse(e->pool, sizeof *e->pool);
    munmap(e->pool, POOL_PAGE);
  }
  memset(e, 0, sizeof *e);
}

static int engine_close(lua_State *L) {
  engine_free((engine *)luaL_checkudata(L, 1, ENGINE_CLASS));
  return 0;
}

static engine *check_engine(lua_State *L) {
  engine *e = (engine *)luaL_checkudata(L, 1, ENGINE_CLASS);
  if (!e->enc) luaL_error(L, ENGINE_CLASS " is closed");
  return e;
}

static int engine_tostring(lua_State *L) {
  engine *e = (engine *)luaL_checkudata(L, 1, ENGINE_CLASS);
  if (!e->enc) lua_pushliteral(L, ENGINE_CLASS "(closed)");
  else lua_pushfstring(L, ENGINE_CLASS "(receive_id=%s)", e->rid);
  return 1;
}

/* Maps the pool page; 0 when it cannot be mapped. */
static int pool_new(engine *e) {
  void *p = mmap(NULL, POOL_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  e->pool = (rand_pool *)p;
#ifdef MADV_WIPEONFORK
  e->wipe_on_fork = madvise(p, POOL_PAGE, MADV_WIPEONFORK) == 0;
#endif
  return 1;
}

/* n (<= sizeof bytes) fresh random bytes; 0 when RAND_bytes failed. */
static int draw_random(engine *e, unsigned char *out, size_t n) {
  rand_pool *p = e->pool;
  if (!e->wipe_on_fork && p->pid != getpid()) p->left = 0;
  if (p->left < n) {
    if (RAND_bytes(p->bytes, (int)sizeof p->bytes) != 1) {
      p->left = 0;
      return 0;
    }
    p->left = sizeof p->bytes;
    if (!e->wipe_on_fork) p->pid = getpid();
  }
  p->left -= n;
  memcpy(out, p->bytes + p->left, n);
  OPENSSL_cleanse(p->bytes + p->left, n);
  return 1;
}

static unsigned char *scratch(lua_State *L, engine *e, size_t need) {
  if (need > e->cap) {
    unsigned char *p = (unsigned char *)OPENSSL_malloc(need);
    if (!p) luaL_error(L, "out of memory");
    if (e->scratch) OPENSSL_clear_free(e->scratch, e->cap);
    e->scratch = p;
    e->cap = need;
  }
  return e->scratch;
}

/* sha1 of the token and the other strings sorted in byte order, as
 * lowercase hex into out[40]: the push signature (with the encrypted text)
 * or, with enc.s == NULL, the URL signature of plaintext mode. */
static int signature(engine *e, span ts, span nonce, span enc, char *out) {
  static const char digits[] = "0123456789abcdef";
  span v[4];
  int nparts = enc.s ? 4 : 3;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  int i, j, ok;
  v[0].s = e->token, v[0].n = e->token_len, v[1] = ts, v[2] = nonce, v[3] = enc;
  for (i = 1; i < nparts; i++) /* insertion sort: memcmp order, a prefix first (strcmp's order) */
    for (j = i; j > 0; j--) {
      size_t m = v[j - 1].n < v[j].n ? v[j - 1].n : v[j].n;
      int c = memcmp(v[j - 1].s, v[j].s, m);
      span t;
      if (c < 0 || (c == 0 && v[j - 1].n <= v[j].n)) break;
      t = v[j - 1], v[j - 1] = v[j], v[j] = t;
    }
  ok = EVP_DigestInit_ex(e->md, e->sha1, NULL) == 1;
  for (i = 0; i < nparts && ok; i++) ok = EVP_DigestUpdate(e->md, v[i].s, v[i].n) == 1;
  ok = ok && EVP_DigestFinal_ex(e->md, md, &len) == 1 && len == 20;
  if (!ok) {
    ERR_clear_error();
    return 0;
  }
  for (i = 0; i < 20; i++) {
    out[2 * i] = digits[md[i] >> 4];
    out[2 * i + 1] = digits[md[i] & 15];
  }
  return 1;
}

static span arg_span(lua_State *L, int i) {
  span s;
  s.s = luaL_checklstring(L, i, &s.n);
  return s;
}

static int fail3(lua_State *L, const char *reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* nil, reason (a msgcrypt code name), message */
static int fail3(lua_State *L, const char *reason, const char *fmt, ...) {
  char msg[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_pushnil(L);
  lua_pushstring(L, reason);
  lua_pushstring(L, msg);
  return 3;
}

/* CBC over whole blocks in place, every message with the protocol's fixed IV
 * (the key's first 16 bytes). The contexts are not re-initialised per
 * message: OpenSSL 3 spends ~150 ns on an IV reset, three times a CBC pass
 * over a push. A context's state is instead the last ciphertext block of its
 * previous message (the chain), and the difference to the fixed IV goes into
 * the first block: encrypting, P1 ^ chain ^ IV goes in, so E(P1 ^ IV) comes
 * out; decrypting, D(C1) ^ chain comes out and ^ chain ^ IV makes it
 * D(C1) ^ IV. A failed pass re-keys the context from scratch. */
static int aes_cbc(engine *e, int encrypt, unsigned char *buf, size_t n) {
  EVP_CIPHER_CTX *ctx = encrypt ? e->enc : e->dec;
  unsigned char *chain = encrypt ? e->enc_chain : e->dec_chain, last[16];
  int len = 0, k;
  if (n == 0 || n % 16 != 0) return 0;
  if (encrypt) {
    for (k = 0; k < 16; k++) buf[k] ^= (unsigned char)(chain[k] ^ e->iv[k]);
  } else {
    memcpy(last, buf + n - 16, 16);
  }
  if (EVP_CipherUpdate(ctx, buf, &len, buf, (int)n) != 1 || (size_t)len != n) {
    ERR_clear_error();
    /* back to the fixed IV; with a NULL cipher and key the key schedule stays */
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, e->iv, -1) != 1) ERR_clear_error();
    memcpy(chain, e->iv, 16);
    return 0;
  }
  if (encrypt) {
    memcpy(chain, buf + n - 16, 16);
  } else {
    for (k = 0; k < 16; k++) buf[k] ^= (unsigned char)(chain[k] ^ e->iv[k]);
    memcpy(chain, last, 16);
  }
  return 1;
}

/* Base64 text (at buf, n bytes) --> message, or nil, reason, message. The
 * ciphertext is decoded to buf + n and decrypted in place. */
static int decrypt_at(lua_State *L, engine *e, const unsigned char *text, size_t n, unsigned char *ct) {
  size_t clen = 0, bad = 0, off = 0, mlen = 0;
  unsigned long detail = 0;
  if (wxhw_b64_decode(text, n, ct, &clen, &bad) != 0) return fail3(L, "decode_base64", "Encrypt is not valid base64");
  if (clen == 0 || clen % 32 != 0)
    return fail3(L, "illegal_buffer", "ciphertext length %zu is not a positive multiple of 32", clen);
  if (!aes_cbc(e, 0, ct, clen)) return fail3(L, "decrypt_aes", "AES-CBC decryption failed");
  switch (wxhw_msg_unframe(ct, clen, e->rid, e->rid_len, &off, &mlen, &detail)) {
    case WXHW_UNFRAME_OK: break;
    case WXHW_UNFRAME_PAD_VALUE: return fail3(L, "illegal_buffer", "bad padding value %lu", detail);
    case WXHW_UNFRAME_PAD_MISMATCH: return fail3(L, "illegal_buffer", "inconsistent padding");
    case WXHW_UNFRAME_SHORT: return fail3(L, "illegal_buffer", "plaintext too short");
    case WXHW_UNFRAME_LENGTH: return fail3(L, "illegal_buffer", "length field %lu exceeds the decrypted data", detail);
    default: return fail3(L, "validate_receive_id", "receive_id mismatch (message is for another app or corp)");
  }
  lua_pushlstring(L, (const char *)ct + off, mlen);
  return 1;
}

/* Signature check of enc, then decrypt. */
static int open_enc(lua_State *L, engine *e, int sig_arg, span ts, span nonce, span enc, unsigned char *ct) {
  char want[SIG_HEX];
  size_t slen = 0;
  const char *sig = lua_type(L, sig_arg) == LUA_TSTRING ? lua_tolstring(L, sig_arg, &slen) : NULL;
  if (enc.n == 0) return fail3(L, "parse", "missing Encrypt field");
  if (!signature(e, ts, nonce, enc, want))
    return fail3(L, "compute_signature", "SHA-1 failed");
  if (!sig || slen != SIG_HEX || CRYPTO_memcmp(sig, want, SIG_HEX) != 0)
    return fail3(L, "validate_signature", "msg_signature mismatch");
  return decrypt_at(L, e, (const unsigned char *)enc.s, enc.n, ct);
}

/* e:open(msg_signature, timestamp, nonce, encrypted) --> msg | nil, reason, message */
static int l_open(lua_State *L) {
  engine *e = check_engine(L);
  span ts = arg_span(L, 3), nonce = arg_span(L, 4), enc = arg_span(L, 5);
  if (enc.n > MSG_MAX_INPUT) return fail3(L, "illegal_buffer", "Encrypt too large");
  return open_enc(L, e, 2, ts, nonce, enc, scratch(L, e, enc.n / 4 * 3 + 1));
}

/* e:open_json(msg_signature, timestamp, nonce, raw_body) --> msg | nil,
 * reason, message | false when the body needs a full JSON decoder. */
static int l_open_json(lua_State *L) {
  engine *e = check_engine(L);
  span ts = arg_span(L, 3), nonce = arg_span(L, 4), body = arg_span(L, 5);
  unsigned char *buf;
  size_t elen = 0;
  if (body.n > MSG_MAX_INPUT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  buf = scratch(L, e, body.n + body.n / 4 * 3 + 1);
  if (!wxhw_json_envelope(body.s, body.n, (char *)buf, &elen)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  {
    span enc;
    enc.s = (const char *)buf, enc.n = elen;
    return open_enc(L, e, 2, ts, nonce, enc, buf + body.n);
  }
}

/* e:decrypt(encrypted) --> msg | nil, reason, message (no signature check:
 * only for payloads already verified) */
static int l_decrypt(lua_State *L) {
  engine *e = check_engine(L);
  span enc = arg_span(L, 2);
  if (enc.n > MSG_MAX_INPUT) return fail3(L, "illegal_buffer", "Encrypt too large");
  return decrypt_at(L, e, (const unsigned char *)enc.s, enc.n, scratch(L, e, enc.n / 4 * 3 + 1));
}

/* e:signature(timestamp, nonce [, encrypted]) --> 40 hex digits; without
 * encrypted, the plaintext-mode URL signature */
static int l_signature(lua_State *L) {
  engine *e = check_engine(L);
  char out[SIG_HEX];
  span enc = {NULL, 0};
  if (!lua_isnoneornil(L, 4)) enc = arg_span(L, 4);
  if (!signature(e, arg_span(L, 2), arg_span(L, 3), enc, out)) return luaL_error(L, "SHA-1 failed");
  lua_pushlstring(L, out, SIG_HEX);
  return 1;
}

/* Encrypts `plain` for a reply into the engine's scratch: the random prefix
 * comes from arg 5 (random16) or the pool, a nil nonce at arg 4 is drawn and
 * put there. With `envelope`, room is kept after the base64 for a JSON reply
 * that holds it again with the signature, timestamp, nonce and keys.
 * Returns the base64 text (*blen bytes) with the signature in sig, or NULL
 * with the failure pushed (fail3: nil, reason, message; 3 values). */
static char *seal_into(lua_State *L, engine *e, span plain, span ts, int envelope, size_t *blen,
                       char sig[SIG_HEX]) {
  unsigned char rnd[16 + 32], *buf;
  char drawn[10];
  size_t full, total;
  unsigned pad;
  span nonce;
  if (plain.n > MSG_MAX_INPUT) {
    fail3(L, "gen_reply", "reply of %zu bytes is too large to seal", plain.n);
    return NULL;
  }
  lua_settop(L, 5); /* slot 4 receives a drawn nonce */
  if (lua_isnil(L, 5)) {
    int draw = lua_isnil(L, 4);
    /* 16 bytes of prefix, then 12 for a 10-character nonce (a byte >= 248
     * is skipped: 12 suffice with probability ~0.99) */
    if (!draw_random(e, rnd, draw ? 28 : 16)) wxhw_raise_ssl(L, "seal: RAND_bytes failed");
    if (draw) {
      size_t got = wxhw_alnum_from_random(rnd + 16, 12, drawn, sizeof drawn);
      while (got < sizeof drawn) {
        if (!draw_random(e, rnd + 16, 8)) wxhw_raise_ssl(L, "seal: RAND_bytes failed");
        got += wxhw_alnum_from_random(rnd + 16, 8, drawn + got, sizeof drawn - got);
      }
      lua_pushlstring(L, drawn, sizeof drawn);
      lua_replace(L, 4);
    }
  } else {
    size_t rn;
    const char *r = luaL_checklstring(L, 5, &rn);
    if (rn != 16) luaL_argerror(L, 5, "random prefix must be 16 bytes");
    memcpy(rnd, r, 16);
  }
  nonce = arg_span(L, 4);
  total = 20 + plain.n + e->rid_len;
  pad = 32 - (unsigned)(total % 32);
  full = total + pad;
  buf = scratch(L, e, full + WXHW_B64_ENCODED_LEN(full) +
                         (envelope ? WXHW_B64_ENCODED_LEN(full) + 96 + SIG_HEX + ts.n + nonce.n : 0));
  memcpy(buf, rnd, 16);
  buf[16] = (unsigned char)(plain.n >> 24), buf[17] = (unsigned char)(plain.n >> 16);
  buf[18] = (unsigned char)(plain.n >> 8), buf[19] = (unsigned char)plain.n;
  memcpy(buf + 20, plain.s, plain.n);
  memcpy(buf + 20 + plain.n, e->rid, e->rid_len);
  memset(buf + total, (int)pad, pad);
  OPENSSL_cleanse(rnd, sizeof rnd);
  if (!aes_cbc(e, 1, buf, full)) {
    fail3(L, "encrypt_aes", "AES-CBC encryption failed");
    return NULL;
  }
  *blen = wxhw_b64_encode(buf, full, (char *)buf + full);
  {
    span enc;
    enc.s = (const char *)buf + full, enc.n = *blen;
    if (!signature(e, ts, nonce, enc, sig)) {
      fail3(L, "compute_signature", "SHA-1 failed");
      return NULL;
    }
  }
  return (char *)buf + full;
}

/* e:seal(plaintext, timestamp [, nonce [, random16]]) --> encrypted,
 * msg_signature, nonce. A nil nonce is drawn (10 of [0-9A-Za-z]) with the
 * random prefix from the engine's pool; random16 is for known-answer tests. */
static int l_seal(lua_State *L) {
  engine *e = check_engine(L);
  char sig[SIG_HEX];
  size_t blen;
  const char *enc = seal_into(L, e, arg_span(L, 2), arg_span(L, 3), 0, &blen, sig);
  if (!enc) return 3;
  lua_pushlstring(L, enc, blen);
  lua_pushlstring(L, sig, SIG_HEX);
  lua_pushvalue(L, 4);
  return 3;
}

static char *put(char *o, const char *s, size_t n) {
  memcpy(o, s, n);
  return o + n;
}
#define PUT(o, lit) put(o, lit, sizeof lit - 1)

/* Room for n more bytes of reply JSON at *len. */
static char *json_room(lua_State *L, engine *e, size_t len, size_t n) {
  if (len + n > e->json_cap) {
    size_t cap = e->json_cap ? e->json_cap : 256;
    char *p;
    while (cap < len + n) cap *= 2;
    p = (char *)OPENSSL_malloc(cap);
    if (!p) luaL_error(L, "out of memory");
    if (e->json) {
      memcpy(p, e->json, len);
      OPENSSL_clear_free(e->json, e->json_cap);
    }
    e->json = p, e->json_cap = cap;
  }
  return e->json + len;
}

static size_t json_quoted(lua_State *L, engine *e, size_t len, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  char *o = json_room(L, e, len, n * 6 + 2), *start = o;
  size_t i;
  *o++ = '"';
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      *o++ = '\\', *o++ = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 15];
    } else {
      *o++ = (char)c;
    }
  }
  *o++ = '"';
  return len + (size_t)(o - start);
}

/* The reply table at idx as a JSON object in e->json when it is flat:
 * string keys; string, boolean, cjson.null or integral number (|n| <= 2^53)
 * values. Returns its length, or 0 to leave it to cjson (anything else,
 * fractions included: cjson prints those with its own precision). Members
 * in lua_next order, as cjson writes them. */
static size_t flat_json(lua_State *L, engine *e, int idx) {
  size_t len = 1, n;
  int first = 1;
  *json_room(L, e, 0, 1) = '{';
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int vt = lua_type(L, -1);
    const char *k;
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      return 0;
    }
    k = lua_tolstring(L, -2, &n);
    if (!first) *json_room(L, e, len++, 1) = ',';
    first = 0;
    len = json_quoted(L, e, len, k, n);
    *json_room(L, e, len++, 1) = ':';
    if (vt == LUA_TSTRING) {
      const char *v = lua_tolstring(L, -1, &n);
      len = json_quoted(L, e, len, v, n);
    } else if (vt == LUA_TBOOLEAN) {
      int b = lua_toboolean(L, -1);
      memcpy(json_room(L, e, len, 5), b ? "true" : "false", b ? 4 : 5);
      len += b ? 4 : 5;
    } else if (vt == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL) {
      memcpy(json_room(L, e, len, 4), "null", 4);
      len += 4;
    } else if (vt == LUA_TNUMBER) {
      lua_Number v = lua_tonumber(L, -1);
      if (!(v >= -9007199254740992.0 && v <= 9007199254740992.0) || v != (lua_Number)(long long)v) {
        lua_pop(L, 2);
        return 0;
      }
      len += (size_t)snprintf(json_room(L, e, len, 24), 24, "%lld", (long long)v);
    } else {
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  *json_room(L, e, len++, 1) = '}';
  return len;
}

/* e:seal_json(plaintext or reply table, timestamp, wecom) --> the whole
 * passive reply body (false for a table flat_json leaves to cjson),
 * {"Encrypt":..,"MsgSignature":..,"TimeStamp":<digits>,"Nonce":..} (Mini
 * Program) or WeCom's lower-case keys with the timestamp as a JSON string,
 * with a drawn nonce. The timestamp must be digits without a leading zero:
 * every value is then plain JSON text (base64, hex, digits, [0-9A-Za-z]). The
 * reply path's one C call, without the three strings seal returns. */
static int l_seal_json(lua_State *L) {
  engine *e = check_engine(L);
  span ts = arg_span(L, 3);
  int wecom = lua_toboolean(L, 4);
  char sig[SIG_HEX], *o, *start, *enc;
  size_t blen, i;
  span nonce, plain;
  if (ts.n == 0 || ts.n > 20 || ts.s[0] == '0') return luaL_argerror(L, 3, "timestamp must be digits");
  for (i = 0; i < ts.n; i++)
    if (ts.s[i] < '0' || ts.s[i] > '9') return luaL_argerror(L, 3, "timestamp must be digits");
  lua_settop(L, 3);
  if (lua_type(L, 2) == LUA_TTABLE) {
    /* a handler's reply table: its JSON without a Lua string in between */
    size_t jn = flat_json(L, e, 2);
    if (jn == 0) {
      lua_pushboolean(L, 0);
      return 1;
    }
    plain.s = e->json, plain.n = jn;
  } else {
    plain = arg_span(L, 2);
  }
  lua_pushnil(L); /* slot 4: a drawn nonce */
  lua_pushnil(L); /* slot 5: random prefix from the pool */
  enc = seal_into(L, e, plain, ts, 1, &blen, sig);
  if (!enc) return 3;
  nonce = arg_span(L, 4);
  start = o = enc + blen;
  o = wecom ? PUT(o, "{\"encrypt\":\"") : PUT(o, "{\"Encrypt\":\"");
  o = put(o, enc, blen);
  o = wecom ? PUT(o, "\",\"msgsignature\":\"") : PUT(o, "\",\"MsgSignature\":\"");
  o = put(o, sig, SIG_HEX);
  o = wecom ? PUT(o, "\",\"timestamp\":\"") : PUT(o, "\",\"TimeStamp\":");
  o = put(o, ts.s, ts.n);
  o = wecom ? PUT(o, "\",\"nonce\":\"") : PUT(o, ",\"Nonce\":\"");
  o = put(o, nonce.s, nonce.n);
  o = PUT(o, "\"}");
  lua_pushlstring(L, start, (size_t)(o - start));
  return 1;
}

/* json_envelope(raw_body) --> the Encrypt (else encrypt) string of a plain
 * JSON push envelope, or nil when only a full JSON decoder can tell. */
static int l_json_envelope(lua_State *L) {
  size_t n, len = 0;
  const char *body = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n);
  if (!wxhw_json_envelope(body, n, out, &len)) {
    luaL_pushresultsize(&b, 0);
    lua_pop(L, 1);
    lua_pushnil(L);
    return 1;
  }
  luaL_pushresultsize(&b, len);
  return 1;
}

/* msgcrypt_engine(token, aes_key (32 bytes), receive_id) --> engine */
static int l_engine(lua_State *L) {
  size_t tlen, klen, rlen;
  const char *token = luaL_checklstring(L, 1, &tlen);
  const char *key = luaL_checklstring(L, 2, &klen);
  const char *rid = luaL_checklstring(L, 3, &rlen);
  const EVP_CIPHER *cbc = WXHW_CRYPTO_ALGS(L)->aes[1][2];
  engine *e;
  int ok;
  luaL_argcheck(L, tlen > 0 && tlen <= 4096, 1, "token must be 1..4096 bytes");
  luaL_argcheck(L, klen == 32, 2, "AES key must be 32 bytes");
  luaL_argcheck(L, rlen > 0 && rlen <= 4096, 3, "receive_id must be 1..4096 bytes");
  e = (engine *)lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e); /* born empty, so __gc is safe whatever fails below */
  luaL_getmetatable(L, ENGINE_CLASS);
  lua_setmetatable(L, -2);
  if (!cbc) cbc = EVP_aes_256_cbc();
  memcpy(e->iv, key, 16);
  memcpy(e->enc_chain, key, 16); /* both contexts start at the fixed IV */
  memcpy(e->dec_chain, key, 16);
  e->token = (char *)OPENSSL_malloc(tlen + rlen + 1);
  e->enc = EVP_CIPHER_CTX_new();
  e->dec = EVP_CIPHER_CTX_new();
  e->md = EVP_MD_CTX_new();
  e->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
  ok = pool_new(e) && e->token && e->enc && e->dec && e->md && e->sha1 &&
       EVP_CipherInit_ex(e->enc, cbc, NULL, (const unsigned char *)key, e->iv, 1) == 1 &&
       EVP_CipherInit_ex(e->dec, cbc, NULL, (const unsigned char *)key, e->iv, 0) == 1 &&
       EVP_CIPHER_CTX_set_padding(e->enc, 0) == 1 && EVP_CIPHER_CTX_set_padding(e->dec, 0) == 1;
  if (!ok) {
    if (!e->token) e->token_len = e->rid_len = 0;
    engine_free(e);
    return wxhw_raise_ssl(L, "msgcrypt_engine: OpenSSL set-up failed");
  }
  memcpy(e->token, token, tlen);
  e->rid = e->token + tlen;
  memcpy(e->rid, rid, rlen);
  e->rid[rlen] = '\0';
  e->token_len = tlen, e->rid_len = rlen;
  return 1;
}

void wxhw_crypto_msg_register(lua_State *L) {
  static const luaL_Reg methods[] = {{"open", l_open},       {"open_json", l_open_json}, {"decrypt", l_decrypt},
                                     {"signature", l_signature}, {"seal", l_seal}, {"seal_json", l_seal_json},         {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", engine_close}, {"__close", engine_close}, {"__tostring", engine_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"msgcrypt_engine", l_engine}, {"json_envelope", l_json_envelope}, {NULL, NULL}};
  wxhw_newclass(L, ENGINE_CLASS, methods, meta);
  wxhw_crypto_setfuncs(L, funcs);
}
