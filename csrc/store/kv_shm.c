/* wxhw.core.kvshm: a fixed-capacity key-value table in a file mapped by
 * every process of one host (nginx workers), for push de-duplication and
 * other short-lived shared keys (lua/wxhw/call/store.lua wraps it).
 *
 * Layout: header | tags[capacity] | slots[capacity]. A tag is the key's
 * seeded 64-bit hash (0 = never used, 1 = deleted) and its expiry, 16 bytes,
 * so a probe reads 4 tags per cache line and touches a slot (key, value) only
 * on a hash match. Linear probing within a window of WINDOW tags from the
 * key's home: a lookup never reads further, so deleted tags (tombstones)
 * cannot make probes long, and a crash mid-write is repaired by turning the
 * slot being written into a tombstone. Expired and deleted slots are reused
 * on insert.
 *
 * Expiry is on CLOCK_MONOTONIC: system-wide on Linux (the same in every
 * process of the host) and never stepped by NTP or an admin, so a ttl is a
 * ttl. It restarts at boot, so the header records the boot id and a file
 * from an earlier boot is initialised again (everything in it has expired
 * for our purposes: the table holds only short-lived keys).
 *
 * One process-shared robust mutex (shmfile.c, shared with the shm token
 * store) guards every operation; it is held for the probe and a memcpy,
 * never across a Lua call. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "shmfile.h"

#define KV_CLASS "wxhw.KvShm"
#define KV_MAGIC "wxhwKV01"
#define KV_VERSION 2
#define KEY_MAX 128
#define VALUE_MAX 65536
#define CAP_MAX ((uint64_t)1 << 26)
#define WINDOW 128
#define EMPTY 0
#define DELETED 1

typedef struct {
  uint64_t hash;   /* EMPTY, DELETED or (seeded hash | 2) */
  double expires;  /* monotonic seconds; 0 = never */
} tag_t;

typedef struct {
  uint32_t keylen, vallen;
  char key[KEY_MAX];
  char value[]; /* value_bytes */
} slot_t;

typedef struct {
  char magic[8];
  uint32_t version, header_size, slot_size, value_bytes;
  uint64_t capacity; /* power of two */
  uint64_t seed[2];
  char boot_id[40];
  int64_t dirty; /* slot being written, or -1; repaired after EOWNERDEAD */
  uint64_t used; /* tags holding an entry (live or expired) */
  uint64_t deleted;
  uint64_t evictions; /* expired entries overwritten by an insert */
  uint64_t recoveries; /* locks taken over from a dead holder */
  uint32_t max_dist;   /* farthest any key was ever placed from its home */
  pthread_mutex_t mu;
} header_t;

#define HEADER_SIZE ((sizeof(header_t) + 63) & ~(size_t)63)

typedef struct {
  header_t *h; /* NULL when closed */
  tag_t *tags;
  char *slots;
  size_t maplen, slot_size;
  uint64_t mask;
  unsigned window;
  char path[200];
} kv_t;

/* ---- hashing: SipHash-1-3, keyed by the table's random seed ---- */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
  do {                                                                                             \
    v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                      \
    v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                         \
    v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                         \
    v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                      \
  } while (0)

static uint64_t siphash13(const uint64_t k[2], const unsigned char *p, size_t n) {
  uint64_t v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
  uint64_t v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
  uint64_t m, b = (uint64_t)n << 56;
  size_t i, left = n & 7;
  for (i = 0; i + 8 <= n; i += 8) {
    memcpy(&m, p + i, 8); /* little-endian hosts; the seed is per file anyway */
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
  }
  for (size_t j = 0; j < left; j++) b |= (uint64_t)p[i + j] << (8 * j);
  v3 ^= b;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

static slot_t *slot_at(kv_t *s, uint64_t i) { return (slot_t *)(s->slots + i * s->slot_size); }

/* ---- open / close ---- */

typedef struct {
  uint64_t capacity;
  uint32_t value_bytes, slot_size;
  char boot_id[40];
  header_t *found; /* for layout(): the header read */
} shape_t;

static void read_boot_id(char out[40]) {
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  memset(out, 0, 40);
  if (fd >= 0) {
    ssize_t n = read(fd, out, 39);
    if (n < 0) out[0] = 0;
    close(fd);
  }
}

static size_t map_len(uint64_t cap, uint32_t slot_size) {
  return HEADER_SIZE + (size_t)cap * (sizeof(tag_t) + slot_size);
}

static void kv_init(void *map, void *arg) {
  shape_t *w = (shape_t *)arg;
  header_t *h = (header_t *)map;
  h->version = KV_VERSION;
  h->header_size = (uint32_t)HEADER_SIZE;
  h->slot_size = w->slot_size;
  h->value_bytes = w->value_bytes;
  h->capacity = w->capacity;
  if (getrandom(h->seed, sizeof h->seed, 0) != (ssize_t)sizeof h->seed) {
    /* No entropy source: still distinct per file and per boot. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->seed[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    h->seed[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)map;
  }
  memcpy(h->boot_id, w->boot_id, sizeof h->boot_id);
  h->dirty = -1;
  wxhw_shm_mutex_init(&h->mu);
  /* tags and slots are zero (EMPTY) from ftruncate */
}

static int kv_stale(const void *hdr, void *arg) {
  const header_t *h = (const header_t *)hdr;
  const shape_t *w = (const shape_t *)arg;
  /* An unreadable boot id (no /proc) on either side proves nothing: wiping a
   * live table would lose every claim in it, while a table left from an
   * earlier boot can only be on disk (/dev/shm does not survive one). */
  if (!h->boot_id[0] || !w->boot_id[0]) return 0;
  return h->version == KV_VERSION && memcmp(h->boot_id, w->boot_id, sizeof h->boot_id) != 0;
}

static size_t kv_layout(const void *hdr, void *arg) {
  const header_t *h = (const header_t *)hdr;
  const shape_t *w = (const shape_t *)arg;
  if (h->version != KV_VERSION || h->header_size != HEADER_SIZE || h->slot_size != w->slot_size ||
      h->value_bytes != w->value_bytes || h->capacity != w->capacity)
    return 0;
  return map_len(h->capacity, h->slot_size);
}

/* The table is argument 1, or upvalue 1 of a method bound by store:bind()
 * (argument 1 is then the caller's own object, ignored). */
static kv_t *check_kv(lua_State *L) {
  kv_t *s = (kv_t *)lua_touserdata(L, lua_upvalueindex(1));
  if (s == NULL) s = (kv_t *)luaL_checkudata(L, 1, KV_CLASS);
  if (s->h == NULL) luaL_error(L, "kv store is closed");
  return s;
}

/* kvshm.open(path, entries, value_bytes) -> store | nil, err
 * capacity: the power of two >= 1.5 x entries (at least 8), so probes stay
 * short when the table holds `entries` live keys. */
static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer entries = luaL_checkinteger(L, 2);
  lua_Integer vb = luaL_optinteger(L, 3, 256);
  shape_t w;
  wxhw_shmfile_spec spec;
  char err[400] = "";
  size_t len = 0;
  uint64_t cap = 8;
  void *map;
  kv_t *s;
  luaL_argcheck(L, entries >= 1 && (uint64_t)entries <= CAP_MAX / 2, 2, "entries must be 1..33554432");
  luaL_argcheck(L, vb >= 1 && vb <= VALUE_MAX, 3, "value_bytes must be 1..65536");
  while (cap < (uint64_t)entries + (uint64_t)entries / 2) cap <<= 1;
  memset(&w, 0, sizeof w);
  w.capacity = cap;
  w.value_bytes = (uint32_t)vb;
  w.slot_size = (uint32_t)((sizeof(slot_t) + (size_t)vb + 7) & ~(size_t)7);
  read_boot_id(w.boot_id);
  /* Born closed, so an allocation error leaves a consistent object. */
  s = (kv_t *)lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, KV_CLASS);
  memset(&spec, 0, sizeof spec);
  spec.what = "kv store";
  spec.magic = KV_MAGIC;
  spec.create_len = map_len(cap, w.slot_size);
  spec.init = kv_init;
  spec.layout = kv_layout;
  spec.stale = kv_stale;
  spec.refuse_foreign = 1;
  spec.populate = 1;
  spec.head = sizeof(header_t);
  spec.arg = &w;
  map = wxhw_shmfile_map(path, &spec, &len, err, sizeof err);
  if (!map) return wxhw_fail(L, "store", "%s", err);
  s->h = (header_t *)map;
  s->tags = (tag_t *)((char *)map + HEADER_SIZE);
  s->slots = (char *)(s->tags + cap);
  s->maplen = len;
  s->slot_size = w.slot_size;
  s->mask = cap - 1;
  s->window = cap < WINDOW ? (unsigned)cap : WINDOW;
  snprintf(s->path, sizeof s->path, "%s", path);
  return 1;
}

static int l_close(lua_State *L) {
  kv_t *s = (kv_t *)luaL_checkudata(L, 1, KV_CLASS);
  if (s->h) {
    munmap(s->h, s->maplen);
    s->h = NULL;
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  kv_t *s = (kv_t *)luaL_checkudata(L, 1, KV_CLASS);
  if (s->h == NULL) lua_pushliteral(L, "wxhw.KvShm (closed)");
  else
    lua_pushfstring(L, "wxhw.KvShm %s (capacity %d, values <= %d bytes)", s->path, (int)s->h->capacity,
                    (int)s->h->value_bytes);
  return 1;
}

/* ---- locking ---- */

static void repair(void *arg) {
  kv_t *s = (kv_t *)arg;
  header_t *h = s->h;
  uint64_t i, used = 0, del = 0;
  if (h->dirty >= 0 && (uint64_t)h->dirty < h->capacity) s->tags[h->dirty].hash = DELETED;
  h->dirty = -1;
  for (i = 0; i < h->capacity; i++) { /* the counters may be one off */
    used += s->tags[i].hash > DELETED;
    del += s->tags[i].hash == DELETED;
  }
  h->used = used;
  h->deleted = del;
  h->recoveries++;
}

static void lock_or_raise(lua_State *L, kv_t *s) {
  int rc = wxhw_shm_lock(&s->h->mu, repair, s);
  if (rc != 0) luaL_error(L, "kv store %s: lock failed: %s", s->path, strerror(rc));
}

static void unlock(kv_t *s) { pthread_mutex_unlock(&s->h->mu); }

/* ---- probing ---- */

typedef struct {
  const char *key;
  size_t klen;
  uint64_t hash;
  int64_t found; /* live entry with the key, or -1 */
  int64_t free;  /* first reusable tag in the window, or -1 */
} probe_t;

static const char *check_key(lua_State *L, int arg, size_t *klen) {
  const char *k = luaL_checklstring(L, arg, klen);
  luaL_argcheck(L, *klen >= 1 && *klen <= KEY_MAX, arg, "key must be 1..128 bytes");
  return k;
}

/* Once every tag has been used no EMPTY tag ends a probe, so the probe also
 * stops past max_dist (no key lies farther from its home) once it has a
 * reusable tag: a cycled table costs a few tags, not the window. */
static void probe(kv_t *s, probe_t *p, double now) {
  uint64_t i = p->hash & s->mask;
  unsigned n, reach = s->h->max_dist;
  p->found = p->free = -1;
  for (n = 0; n < s->window; n++, i = (i + 1) & s->mask) {
    tag_t *t = &s->tags[i];
    if (n > reach && p->free >= 0) return;
    if (t->hash == EMPTY) {
      if (p->free < 0) p->free = (int64_t)i;
      return; /* never used: the key was never beyond it */
    }
    if (t->hash == DELETED || (t->expires != 0 && t->expires <= now)) {
      if (p->free < 0) p->free = (int64_t)i;
      continue;
    }
    if (t->hash == p->hash) {
      slot_t *sl = slot_at(s, i);
      if (sl->keylen == p->klen && memcmp(sl->key, p->key, p->klen) == 0) {
        p->found = (int64_t)i;
        return;
      }
    }
  }
}

static double expiry(lua_State *L, int arg, double now) {
  lua_Number ttl = luaL_optnumber(L, arg, 0);
  luaL_argcheck(L, ttl >= 0 && ttl < 1e9, arg, "ttl must be >= 0 seconds (0 = no expiry)");
  return ttl > 0 ? now + ttl : 0;
}

/* Writes key/value at tag i (found or free); the lock is held. */
static void store(kv_t *s, int64_t i, const probe_t *p, const char *v, size_t vlen, double exp) {
  header_t *h = s->h;
  tag_t *t = &s->tags[i];
  slot_t *sl = slot_at(s, (uint64_t)i);
  if (t->hash == EMPTY) h->used++;
  else if (t->hash == DELETED) {
    h->used++;
    h->deleted--;
  } else if (i != p->found) h->evictions++; /* an expired entry */
  {
    uint32_t dist = (uint32_t)(((uint64_t)i - p->hash) & s->mask);
    if (dist > h->max_dist) h->max_dist = dist;
  }
  h->dirty = i;
  /* A kill -9 lands between any two stores: the compiler must not move a
   * store of the entry outside the dirty mark (no CPU fence needed: the next
   * locker runs after the kernel released the robust mutex). */
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  sl->keylen = (uint32_t)p->klen;
  memcpy(sl->key, p->key, p->klen);
  sl->vallen = (uint32_t)vlen;
  memcpy(sl->value, v, vlen);
  t->expires = exp;
  t->hash = p->hash;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  h->dirty = -1;
}

static void erase(kv_t *s, int64_t i) {
  s->tags[i].hash = DELETED;
  s->h->used--;
  s->h->deleted++;
}

/* The key's home tag and slot are fetched before the lock is taken: in a
 * table larger than the caches they are misses, which otherwise stretch the
 * time the lock is held by a trip to memory each. */
static void init_probe(kv_t *s, probe_t *p, const char *key, size_t klen) {
  uint64_t home;
  slot_t *sl;
  p->key = key;
  p->klen = klen;
  p->hash = siphash13(s->h->seed, (const unsigned char *)key, klen) | 2;
  home = p->hash & s->mask;
  sl = slot_at(s, home);
  __builtin_prefetch(&s->tags[home], 1);
  __builtin_prefetch(sl, 1);
  __builtin_prefetch(sl->value, 1);
}

static int fail_full(lua_State *L, kv_t *s) {
  return wxhw_fail(L, "store", "kv store %s is full (capacity %d, %d entries); open it with more entries",
                   s->path, (int)s->h->capacity, (int)s->h->used);
}

static int check_value(lua_State *L, kv_t *s, int arg, const char **v, size_t *vlen) {
  *v = luaL_checklstring(L, arg, vlen);
  if (*vlen > s->h->value_bytes)
    return wxhw_fail(L, "store", "kv store %s: value of %d bytes is longer than its value_bytes (%d)", s->path,
                     (int)*vlen, (int)s->h->value_bytes);
  return 0;
}

/* ---- operations ---- */

/* store:get(key) -> value | nil
 * The value is copied out under the lock into memory prepared beforehand (a
 * stack buffer, or a Lua buffer for large value_bytes), so nothing that may
 * raise (allocation) happens while the lock is held. */
#define SMALL_VALUE 2048
static int l_get(lua_State *L) {
  kv_t *s = check_kv(L);
  probe_t p;
  size_t klen, n = 0;
  const char *key = check_key(L, 2, &klen);
  luaL_Buffer b;
  char small[SMALL_VALUE], *out = small;
  int big = s->h->value_bytes > SMALL_VALUE;
  init_probe(s, &p, key, klen);
  if (big) out = luaL_buffinitsize(L, &b, s->h->value_bytes);
  lock_or_raise(L, s);
  probe(s, &p, wxhw_monotonic());
  if (p.found >= 0) {
    slot_t *sl = slot_at(s, (uint64_t)p.found);
    n = sl->vallen;
    memcpy(out, sl->value, n);
  }
  unlock(s);
  if (big) luaL_pushresultsize(&b, n);
  if (p.found < 0) lua_pushnil(L);
  else if (!big) lua_pushlstring(L, small, n);
  return 1;
}

/* set and add: store the value at the key's slot (set) or only when no live
 * entry holds the key (add). Pushes true, false (add: the key is live) or
 * nil, err (full, value too long). */
static int put(lua_State *L, int only_new) {
  kv_t *s = check_kv(L);
  probe_t p;
  size_t klen, vlen;
  const char *key = check_key(L, 2, &klen), *v;
  double now = wxhw_monotonic(), exp = expiry(L, 4, now);
  int64_t at;
  if (check_value(L, s, 3, &v, &vlen)) return 2;
  init_probe(s, &p, key, klen);
  lock_or_raise(L, s);
  probe(s, &p, now);
  if (p.found >= 0 && only_new) {
    unlock(s);
    lua_pushboolean(L, 0);
    return 1;
  }
  at = p.found >= 0 ? p.found : p.free;
  if (at >= 0) store(s, at, &p, v, vlen, exp);
  unlock(s);
  if (at < 0) return fail_full(L, s);
  lua_pushboolean(L, 1);
  return 1;
}

/* store:set(key, value[, ttl]) -> true | nil, err (full, value too long) */
static int l_set(lua_State *L) { return put(L, 0); }

/* store:add(key, value[, ttl]) -> true | false (a live entry exists) | nil, err */
static int l_add(lua_State *L) { return put(L, 1); }

/* store:cas(key, old, new[, ttl]) -> true | false (the value was not `old`) | nil, err
 * old = nil: the key must be absent; new = nil: delete it. */
static int l_cas(lua_State *L) {
  kv_t *s = check_kv(L);
  probe_t p;
  size_t klen, olen = 0, nlen = 0;
  const char *key = check_key(L, 2, &klen);
  const char *old = luaL_optlstring(L, 3, NULL, &olen), *nv = NULL;
  double now = wxhw_monotonic(), exp = expiry(L, 5, now);
  int r;
  if (!lua_isnoneornil(L, 4) && check_value(L, s, 4, &nv, &nlen)) return 2;
  init_probe(s, &p, key, klen);
  lock_or_raise(L, s);
  probe(s, &p, now);
  if (old == NULL) r = p.found < 0;
  else {
    slot_t *sl = p.found >= 0 ? slot_at(s, (uint64_t)p.found) : NULL;
    r = sl && sl->vallen == olen && memcmp(sl->value, old, olen) == 0;
  }
  if (r) {
    if (nv == NULL) {
      if (p.found >= 0) erase(s, p.found);
    } else {
      int64_t at = p.found >= 0 ? p.found : p.free;
      if (at < 0) r = -1;
      else store(s, at, &p, nv, nlen, exp);
    }
  }
  unlock(s);
  if (r < 0) return fail_full(L, s);
  lua_pushboolean(L, r);
  return 1;
}

/* store:delete(key) -> true */
static int l_delete(lua_State *L) {
  kv_t *s = check_kv(L);
  probe_t p;
  size_t klen;
  const char *key = check_key(L, 2, &klen);
  init_probe(s, &p, key, klen);
  lock_or_raise(L, s);
  probe(s, &p, wxhw_monotonic());
  if (p.found >= 0) erase(s, p.found);
  unlock(s);
  lua_pushboolean(L, 1);
  return 1;
}

/* store:keys([prefix]) -> { key, ... } (live keys, unsorted). Scans the whole
 * table, taking the lock per slot so other processes are not held up. */
static int l_keys(lua_State *L) {
  kv_t *s = check_kv(L);
  size_t plen = 0;
  const char *prefix = luaL_optlstring(L, 2, "", &plen);
  uint64_t i;
  int n = 0;
  char key[KEY_MAX];
  lua_newtable(L);
  for (i = 0; i < s->h->capacity; i++) {
    uint32_t kl = 0;
    tag_t *t = &s->tags[i];
    if (__atomic_load_n(&t->hash, __ATOMIC_RELAXED) <= DELETED) continue;
    lock_or_raise(L, s);
    if (t->hash > DELETED && (t->expires == 0 || t->expires > wxhw_monotonic())) {
      slot_t *sl = slot_at(s, i);
      kl = sl->keylen;
      memcpy(key, sl->key, kl);
    }
    unlock(s);
    if (kl >= plen && memcmp(key, prefix, plen) == 0) {
      lua_pushlstring(L, key, kl);
      lua_rawseti(L, -2, ++n);
    }
  }
  return 1;
}

/* store:stats() -> { entries, capacity, evictions, deleted, recoveries, value_bytes, max_probe } */
static int l_stats(lua_State *L) {
  kv_t *s = check_kv(L);
  header_t c;
  lock_or_raise(L, s);
  memcpy(&c, s->h, offsetof(header_t, mu));
  unlock(s);
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, (lua_Integer)c.max_dist);
  lua_setfield(L, -2, "max_probe");
  lua_pushinteger(L, (lua_Integer)c.used);
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, (lua_Integer)c.capacity);
  lua_setfield(L, -2, "capacity");
  lua_pushinteger(L, (lua_Integer)c.evictions);
  lua_setfield(L, -2, "evictions");
  lua_pushinteger(L, (lua_Integer)c.deleted);
  lua_setfield(L, -2, "deleted");
  lua_pushinteger(L, (lua_Integer)c.recoveries);
  lua_setfield(L, -2, "recoveries");
  lua_pushinteger(L, (lua_Integer)c.value_bytes);
  lua_setfield(L, -2, "value_bytes");
  return 1;
}

#ifdef WXHW_TEST_HOOKS
/* Test-only: take the lock, mark the key's slot as being written, and then
 *   "pause": never return (the spec kills the process);
 *   "exit":  unmap the table and exit. The kernel's robust-list cleanup
 *            cannot reach an unmapped futex, so the lock word keeps this
 *            process's id: the owner-gone case the kernel leaves to us
 *            (shmfile.c).
 * The other processes must recover either way. */
static int l_test_hold_lock(lua_State *L) {
  static const char *const how[] = {"pause", "exit", NULL};
  kv_t *s = check_kv(L);
  probe_t p;
  size_t klen;
  const char *key = check_key(L, 2, &klen);
  int exit_now = luaL_checkoption(L, 3, "pause", how);
  init_probe(s, &p, key, klen);
  lock_or_raise(L, s);
  probe(s, &p, wxhw_monotonic());
  s->h->dirty = p.found >= 0 ? p.found : p.free;
  if (exit_now) {
    munmap(s->h, s->maplen);
    _exit(0);
  }
  for (;;) pause();
  return 0;
}
#endif

static const char *const BOUND[] = {"get", "set", "add", "cas", "delete", NULL};

/* store:bind(obj) -> obj with get/set/add/cas/delete bound to this table, so
 * obj:get(k) is one C call (the Lua wrapper in wxhw.call.store uses it). */
static int l_bind(lua_State *L) {
  int i;
  check_kv(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_getmetafield(L, 1, "__index");
  for (i = 0; BOUND[i]; i++) {
    lua_getfield(L, -1, BOUND[i]);
    lua_CFunction f = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, 2, BOUND[i]);
  }
  lua_pop(L, 1);
  lua_settop(L, 2);
  return 1;
}

int wxhw_open_kvshm(lua_State *L) {
  static const luaL_Reg methods[] = {{"get", l_get},       {"set", l_set},     {"add", l_add},
                                     {"cas", l_cas},       {"delete", l_delete}, {"keys", l_keys},
                                     {"stats", l_stats},   {"close", l_close}, {"bind", l_bind},
#ifdef WXHW_TEST_HOOKS
                                     {"_test_hold_lock", l_test_hold_lock},
#endif
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
  wxhw_newclass(L, KV_CLASS, methods, meta);
  lua_newtable(L);
  lua_pushcfunction(L, l_open);
  lua_setfield(L, -2, "open");
  return 1;
}
