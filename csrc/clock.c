/* Clocks for Lua: os.time() has one-second resolution and os.clock() counts
 * CPU time, neither fits rate limiters, expiries or latency hooks. */
#include <errno.h>
#include <time.h>

#include "wxhw.h"

static double read_clock(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall-clock seconds since the epoch, with sub-microsecond resolution. */
static int l_now(lua_State *L) {
  lua_pushnumber(L, read_clock(CLOCK_REALTIME));
  return 1;
}

double wxhw_monotonic(void) { return read_clock(CLOCK_MONOTONIC); }

/* Seconds on a clock that never jumps: for intervals and deadlines. */
static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, wxhw_monotonic());
  return 1;
}

/* Blocks the calling thread: never call it inside an nginx worker. */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  struct timespec ts;
  if (s <= 0) return 0;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
  return 0;
}

int wxhw_open_clock(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"now", l_now}, {"monotonic", l_monotonic}, {"sleep", l_sleep}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
