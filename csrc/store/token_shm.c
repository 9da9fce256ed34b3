/* The shm token store: a fixed table of token records in an mmap'd file
 * (mode 0600), shared by every process of one host without a server.
 *
 * Concurrency (file and mutex set-up in shmfile.c): one process-shared *robust* pthread mutex in the mapping guards
 * every write, so a process killed while holding it cannot wedge the others
 * (the next locker gets EOWNERDEAD and repairs the half-written slot).
 * Refresh leases carry an owner pid and a monotonic deadline: a lease whose
 * owner is dead or whose deadline passed is free. The id of the last lease
 * granted stays in the record after release, so a holder whose lease was
 * taken over cannot commit its (older) token over the newer holder's, even
 * once that holder is done. Each record has a generation
 * counter bumped on every change; the manager's cache-hit path reads it with
 * one atomic load and no lock (`peek`).
 *
 * Times of token records (expires_at, fetched_at) are the manager's clock and
 * pass through untouched; lease deadlines use CLOCK_MONOTONIC. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmfile.h"
#include "tokenstore.h"

#define SHM_CLASS "wxhw.TokenShm"
#define SHM_MAGIC "wxhwTS01"
#define KEY_MAX 192
#define TOKEN_MAX 2048 /* WeChat documents <= 512; keep headroom */
#define NSLOTS_DEFAULT 256
#define NSLOTS_MAX 65536

typedef struct {
  uint64_t gen;         /* atomic; 0 until the first record; bumped on change */
  uint32_t keylen;      /* written last when a slot is claimed: 0 = free */
  uint32_t toklen;      /* 0 = no token */
  double expires_at;    /* manager clock */
  double fetched_at;    /* manager clock */
  double lease_deadline;/* monotonic */
  uint64_t lease_id;     /* the last lease granted; kept after release */
  int32_t lease_pid;    /* 0 = no lease */
  uint32_t force_count; /* force refreshes on force_day */
  int64_t force_day;
  double last_force_at;
  uint64_t commits;     /* tokens stored, for stats */
  char key[KEY_MAX];
  char token[TOKEN_MAX];
} slot_t;

typedef struct {
  char magic[8];
  uint32_t header_size, slot_size, nslots;
  int32_t dirty; /* slot being written (or -1), repaired after EOWNERDEAD */
  uint64_t next_lease_id;
  uint64_t recoveries; /* locks taken over from a dead holder */
  pthread_mutex_t mu;
} header_t;

#define HEADER_SIZE ((sizeof(header_t) + 63) & ~(size_t)63)

typedef struct {
  header_t *h; /* NULL when closed */
  slot_t *slots;
  size_t maplen;
  char path[200];
} shm_t;

static shm_t *check_open(lua_State *L) {
  shm_t *s = (shm_t *)luaL_checkudata(L, 1, SHM_CLASS);
  if (s->h == NULL) luaL_error(L, "token store is closed");
  return s;
}

static slot_t *check_slot(lua_State *L, shm_t *s, int arg) {
  lua_Integer i = luaL_checkinteger(L, arg);
  if (i < 1 || i > (lua_Integer)s->h->nslots || s->slots[i - 1].keylen == 0)
    luaL_argerror(L, arg, "not a slot of this store (use store:slot(key))");
  return &s->slots[i - 1];
}

static void clear_record(slot_t *sl) {
  sl->toklen = 0;
  sl->expires_at = 0;
  sl->fetched_at = 0;
  sl->lease_pid = 0;
  sl->lease_id = 0;
  sl->lease_deadline = 0;
  __atomic_add_fetch(&sl->gen, 1, __ATOMIC_RELEASE);
}

/* The previous holder died inside a critical section: drop the record it
 * may have half written; the next caller fetches it again. */
static void repair(void *arg) {
  shm_t *s = (shm_t *)arg;
  int32_t d = s->h->dirty;
  if (d >= 0 && (uint32_t)d < s->h->nslots) {
    slot_t *sl = &s->slots[d];
    if (sl->keylen > KEY_MAX) sl->keylen = 0;
    clear_record(sl);
  }
  s->h->dirty = -1;
  s->h->recoveries++;
}

/* Returns 0 with the lock held, or an errno. */
static int shm_lock(shm_t *s) { return wxhw_shm_lock(&s->h->mu, repair, s); }

static void shm_unlock(shm_t *s) { pthread_mutex_unlock(&s->h->mu); }

/* A kill -9 lands between any two stores: the signal fences keep the
 * compiler from moving a store of the record outside the dirty mark. */
static void begin_write(shm_t *s, slot_t *sl) {
  s->h->dirty = (int32_t)(sl - s->slots);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
static void end_write(shm_t *s) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  s->h->dirty = -1;
}

static int lock_or_fail(lua_State *L, shm_t *s) {
  int rc = shm_lock(s);
  if (rc != 0) wxhw_fail(L, "store", "token store lock failed: %s", strerror(rc));
  return rc;
}

static int lease_live(const slot_t *sl, double now) {
  if (sl->lease_pid == 0 || sl->lease_deadline <= now) return 0;
  if (kill((pid_t)sl->lease_pid, 0) == 0 || errno == EPERM) return 1;
  return 0; /* owner is gone */
}

/* ---- open / close ---- */

static void init_header(void *map, void *arg) {
  header_t *h = (header_t *)map;
  h->header_size = (uint32_t)HEADER_SIZE;
  h->slot_size = (uint32_t)sizeof(slot_t);
  h->nslots = *(uint32_t *)arg;
  h->dirty = -1;
  h->next_lease_id = 1;
  wxhw_shm_mutex_init(&h->mu);
}

static size_t layout(const void *hdr, void *arg) {
  const header_t *h = (const header_t *)hdr;
  (void)arg;
  if (h->header_size != HEADER_SIZE || h->slot_size != sizeof(slot_t) || h->nslots < 1 ||
      h->nslots > NSLOTS_MAX)
    return 0;
  return HEADER_SIZE + (size_t)h->nslots * sizeof(slot_t);
}

static int l_shm_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer want = luaL_optinteger(L, 2, NSLOTS_DEFAULT);
  uint32_t nslots;
  shm_t *s;
  wxhw_shmfile_spec spec;
  char err[400] = "";
  size_t len = 0;
  void *map;

  luaL_argcheck(L, want >= 1 && want <= NSLOTS_MAX, 2, "slot count must be 1..65536");
  nslots = (uint32_t)want;
  /* Born closed, so an allocation error leaves a consistent object. */
  s = (shm_t *)lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SHM_CLASS);
  memset(&spec, 0, sizeof spec);
  spec.what = "token store";
  spec.magic = SHM_MAGIC;
  spec.create_len = HEADER_SIZE + (size_t)nslots * sizeof(slot_t);
  spec.init = init_header;
  spec.layout = layout;
  spec.head = sizeof(header_t);
  spec.arg = &nslots;
  map = wxhw_shmfile_map(path, &spec, &len, err, sizeof err);
  if (!map) return wxhw_fail(L, "store", "%s", err);
  s->h = (header_t *)map;
  s->slots = (slot_t *)((char *)map + HEADER_SIZE);
  s->maplen = len;
  snprintf(s->path, sizeof s->path, "%s", path);
  return 1;
}

static int l_shm_close(lua_State *L) {
  shm_t *s = (shm_t *)luaL_checkudata(L, 1, SHM_CLASS);
  if (s->h) {
    munmap(s->h, s->maplen);
    s->h = NULL;
    s->slots = NULL;
  }
  return 0;
}

static int l_shm_tostring(lua_State *L) {
  shm_t *s = (shm_t *)luaL_checkudata(L, 1, SHM_CLASS);
  uint32_t i, used = 0;
  if (s->h == NULL) {
    lua_pushliteral(L, "wxhw.TokenShm (closed)");
    return 1;
  }
  for (i = 0; i < s->h->nslots; i++) used += s->slots[i].keylen != 0;
  lua_pushfstring(L, "wxhw.TokenShm %s (%d of %d slots used, %d lock recoveries)", s->path, (int)used,
                  (int)s->h->nslots, (int)s->h->recoveries);
  return 1;
}

/* ---- records ---- */

static uint64_t fnv1a(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  while (n--) h = (h ^ (unsigned char)*p++) * 1099511628211ULL;
  return h;
}

/* store:slot(key) -> index; claims a slot for a new key. */
static int l_shm_slot(lua_State *L) {
  shm_t *s = check_open(L);
  size_t klen, i, n;
  const char *key = luaL_checklstring(L, 2, &klen);
  lua_Integer found = 0;
  luaL_argcheck(L, klen > 0 && klen <= KEY_MAX, 2, "key must be 1..192 bytes");
  n = s->h->nslots;
  i = (size_t)(fnv1a(key, klen) % n);
  if (lock_or_fail(L, s) != 0) return 2;
  for (size_t probes = 0; probes < n; probes++, i = (i + 1) % n) {
    slot_t *sl = &s->slots[i];
    if (sl->keylen == klen && memcmp(sl->key, key, klen) == 0) {
      found = (lua_Integer)i + 1;
      break;
    }
    if (sl->keylen == 0) { /* free: claim it */
      begin_write(s, sl);
      memset(sl, 0, sizeof *sl - TOKEN_MAX);
      memcpy(sl->key, key, klen);
      __atomic_store_n(&sl->keylen, (uint32_t)klen, __ATOMIC_RELEASE);
      end_write(s);
      found = (lua_Integer)i + 1;
      break;
    }
  }
  shm_unlock(s);
  if (!found) return wxhw_fail(L, "store", "token store %s is full (%d keys); open it with more slots", s->path, (int)n);
  lua_pushinteger(L, found);
  return 1;
}

/* store:peek(i) -> generation; lock-free, for the cache-hit path. */
static int l_shm_peek(lua_State *L) {
  shm_t *s = check_open(L);
  slot_t *sl = check_slot(L, s, 2);
  lua_pushinteger(L, (lua_Integer)__atomic_load_n(&sl->gen, __ATOMIC_ACQUIRE));
  return 1;
}

/* The closure from store:peeker(i): the same load with no argument checks,
 * for the manager's hit path (upvalues: the store, the slot index). */
static int l_peek_closure(lua_State *L) {
  shm_t *s = (shm_t *)lua_touserdata(L, lua_upvalueindex(1));
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
  if (s->h == NULL) return luaL_error(L, "token store is closed");
  lua_pushinteger(L, (lua_Integer)__atomic_load_n(&s->slots[i - 1].gen, __ATOMIC_ACQUIRE));
  return 1;
}

/* store:peeker(i) -> function() -> generation */
static int l_shm_peeker(lua_State *L) {
  shm_t *s = check_open(L);
  check_slot(L, s, 2);
  lua_settop(L, 2);
  lua_pushcclosure(L, l_peek_closure, 2);
  return 1;
}

/* store:get(i) -> token|false, expires_at, fetched_at, gen */
static int l_shm_get(lua_State *L) {
  shm_t *s = check_open(L);
  slot_t *sl = check_slot(L, s, 2);
  char tok[TOKEN_MAX];
  uint32_t tlen;
  double exp, fetched;
  uint64_t gen;
  if (lock_or_fail(L, s) != 0) return 2;
  tlen = sl->toklen;
  if (tlen > TOKEN_MAX) tlen = 0; /* never trust a length read from a shared file */
  memcpy(tok, sl->token, tlen);
  exp = sl->expires_at;
  fetched = sl->fetched_at;
  gen = sl->gen;
  shm_unlock(s);
  if (tlen) lua_pushlstring(L, tok, tlen);
  else lua_pushboolean(L, 0);
  lua_pushnumber(L, exp);
  lua_pushnumber(L, fetched);
  lua_pushinteger(L, (lua_Integer)gen);
  return 4;
}

/* store:lease(i, ttl) -> true, lease_id | false, holder_pid, seconds_left */
static int l_shm_lease(lua_State *L) {
  shm_t *s = check_open(L);
  slot_t *sl = check_slot(L, s, 2);
  lua_Number ttl = luaL_checknumber(L, 3);
  double now = wxhw_monotonic();
  int got;
  uint64_t id = 0;
  int32_t holder;
  double left;
  luaL_argcheck(L, ttl > 0 && ttl <= 3600, 3, "lease ttl must be in (0, 3600] seconds");
  if (lock_or_fail(L, s) != 0) return 2;
  got = !lease_live(sl, now);
  if (got) {
    begin_write(s, sl);
    id = s->h->next_lease_id++;
    sl->lease_id = id;
    sl->lease_deadline = now + ttl;
    sl->lease_pid = (int32_t)getpid();
    end_write(s);
  }
  holder = sl->lease_pid;
  left = sl->lease_deadline - now;
  shm_unlock(s);
  if (got) {
    lua_pushboolean(L, 1);
    lua_pushinteger(L, (lua_Integer)id);
    return 2;
  }
  lua_pushboolean(L, 0);
  lua_pushinteger(L, holder);
  lua_pushnumber(L, left);
  return 3;
}

/* store:release(i, lease_id) -> true if that lease was still held */
static int l_shm_release(lua_State *L) {
  shm_t *s = check_open(L);
  slot_t *sl = check_slot(L, s, 2);
  uint64_t id = (uint64_t)luaL_checkinteger(L, 3);
  int ok;
  if (lock_or_fail(L, s) != 0) return 2;
  ok = sl->lease_pid != 0 && sl->lease_id == id;
  if (ok) {
    sl->lease_pid = 0;
    sl->lease_deadline = 0;
  }
  shm_unlock(s);
  lua_pushboolean(L, ok);
  return 1;
}

/* store:commit(i, lease_id, token, expires_at, fetched_at) -> gen | false, "lease lost"
 * Stores the token and releases the lease, unless another lease was granted
 * since ours (then that holder's token wins, whether it has committed yet,
 * is still fetching or died): ours was fetched earlier. A lease that merely
 * ran out with nobody taking over still commits. lease_id 0 stores
 * unconditionally. */
static int l_shm_commit(lua_State *L) {
  shm_t *s = check_open(L);
  slot_t *sl = check_slot(L, s, 2);
  uint64_t id = (uint64_t)luaL_checkinteger(L, 3);
  size_t tlen;
  const char *tok = luaL_checklstring(L, 4, &tlen);
  lua_Number exp = luaL_checknumber(L, 5), fetched = luaL_checknumber(L, 6);
  uint64_t gen = 0;
  int ok;
  luaL_argcheck(L, tlen > 0 && tlen <= TOKEN_MAX, 4, "token must be 1..2048 bytes");
  if (lock_or_fail(L, s) != 0) return 2;
  ok = id == 0 || sl->lease_id == id;
  if (ok) {
    begin_write(s, sl);
    memcpy(sl->token, tok, tlen);
    sl->toklen = (uint32_t)tlen;
    sl->expires_at = exp;
    sl->fetched_at = fetched;
    sl->commits++;
    if (id != 0) {
      sl->lease_pid = 0;
      sl->lease_deadline = 0;
    }
    gen = __atomic_add_fetch(&sl->gen, 1, __ATOMIC_RELEASE);
    end_write(s);
  }
  shm_unlock(s);
  if (!ok) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "lease lost");
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)gen);
  return 1;
}

/* store:invalidate(i, failed_token) -> true if the stored token was the failed
 * one and is now gone; false when it had already changed (compare-and-invalidate). */
static int l_shm_invalidate(lua_State *L) {
  shm_t *s = check_open(L);
  slot_t *sl = check_slot(L, s, 2);
  size_t flen;
  const char *failed = luaL_checklstring(L, 3, &flen);
  int hit;
  if (lock_or_fail(L, s) != 0) return 2;
  hit = sl->toklen != 0 && sl->toklen == flen && memcmp(sl->token, failed, flen) == 0;
  if (hit) {
    begin_write(s, sl);
    sl->toklen = 0;
    sl->expires_at = 0;
    __atomic_add_fetch(&sl->gen, 1, __ATOMIC_RELEASE);
    end_write(s);
  }
  shm_unlock(s);
  lua_pushboolean(L, hit);
  return 1;
}

/* store:force_permit(i, now, day, per_day, spacing) -> true | false, reason, wait
 * Counts explicit force refreshes per day and spaces them, across processes. */
static int l_shm_force_permit(lua_State *L) {
  shm_t *s = check_open(L);
  slot_t *sl = check_slot(L, s, 2);
  lua_Number now = luaL_checknumber(L, 3);
  int64_t day = (int64_t)luaL_checkinteger(L, 4);
  lua_Integer per_day = luaL_checkinteger(L, 5);
  lua_Number spacing = luaL_checknumber(L, 6);
  const char *reason = NULL;
  double wait = 0;
  if (lock_or_fail(L, s) != 0) return 2;
  if (sl->force_day != day) {
    sl->force_day = day;
    sl->force_count = 0;
  }
  if ((lua_Integer)sl->force_count >= per_day) reason = "daily";
  else if (sl->last_force_at > 0 && now - sl->last_force_at < spacing) {
    reason = "spacing";
    wait = spacing - (now - sl->last_force_at);
  } else {
    sl->force_count++;
    sl->last_force_at = now;
  }
  shm_unlock(s);
  if (!reason) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, reason);
  lua_pushnumber(L, wait);
  return 3;
}

/* store:info(i) -> {key, expires_at, fetched_at, gen, has_token, lease_pid,
 * lease_left, commits, force_count}; never the token. */
static int l_shm_info(lua_State *L) {
  shm_t *s = check_open(L);
  slot_t *sl = check_slot(L, s, 2);
  slot_t c;
  double now = wxhw_monotonic();
  if (lock_or_fail(L, s) != 0) return 2;
  memcpy(&c, sl, sizeof c - TOKEN_MAX);
  c.lease_pid = lease_live(sl, now) ? sl->lease_pid : 0;
  shm_unlock(s);
  lua_createtable(L, 0, 9);
  lua_pushlstring(L, c.key, c.keylen);
  lua_setfield(L, -2, "key");
  lua_pushnumber(L, c.expires_at);
  lua_setfield(L, -2, "expires_at");
  lua_pushnumber(L, c.fetched_at);
  lua_setfield(L, -2, "fetched_at");
  lua_pushinteger(L, (lua_Integer)c.gen);
  lua_setfield(L, -2, "gen");
  lua_pushboolean(L, c.toklen != 0);
  lua_setfield(L, -2, "has_token");
  lua_pushinteger(L, c.lease_pid);
  lua_setfield(L, -2, "lease_pid");
  lua_pushnumber(L, c.lease_pid ? c.lease_deadline - now : 0);
  lua_setfield(L, -2, "lease_left");
  lua_pushinteger(L, (lua_Integer)c.commits);
  lua_setfield(L, -2, "commits");
  lua_pushinteger(L, (lua_Integer)c.force_count);
  lua_setfield(L, -2, "force_count");
  return 1;
}

/* store:keys() -> array of keys in use */
static int l_shm_keys(lua_State *L) {
  shm_t *s = check_open(L);
  uint32_t i;
  int n = 0;
  lua_newtable(L);
  for (i = 0; i < s->h->nslots; i++) {
    uint32_t kl = __atomic_load_n(&s->slots[i].keylen, __ATOMIC_ACQUIRE);
    if (kl == 0 || kl > KEY_MAX) continue;
    lua_pushlstring(L, s->slots[i].key, kl);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

void wxhw_tokenstore_shm_register(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"slot", l_shm_slot},         {"peek", l_shm_peek},         {"peeker", l_shm_peeker},
      {"get", l_shm_get},           {"lease", l_shm_lease},
      {"release", l_shm_release},   {"commit", l_shm_commit},
      {"invalidate", l_shm_invalidate}, {"force_permit", l_shm_force_permit},
      {"info", l_shm_info},         {"keys", l_shm_keys},
      {"close", l_shm_close},       {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_shm_close},
                                  {"__close", l_shm_close},
                                  {"__tostring", l_shm_tostring},
                                  {NULL, NULL}};
  wxhw_newclass(L, SHM_CLASS, methods, meta);
  lua_pushcfunction(L, l_shm_open);
  lua_setfield(L, -2, "shm_open");
}
