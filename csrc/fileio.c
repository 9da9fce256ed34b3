/* Durable file primitives for journals and manifests: Lua's io library can
 * flush to the kernel but not to the disk, and cannot cut a torn tail off a
 * file. Works on the io library's own file handles ("FILE*" userdata), whose
 * first member is the FILE pointer in Lua 5.1-5.4 and LuaJIT alike. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wxhw.h"

static FILE *check_file(lua_State *L, int idx) {
  FILE **pf = (FILE **)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  if (*pf == NULL) luaL_argerror(L, idx, "file is closed");
  return *pf;
}

static int fail_errno(lua_State *L, const char *what, int err) {
  return wxhw_fail(L, "io", "%s: %s", what, strerror(err));
}

/* fsync(file): flush Lua's buffer, then ask the kernel to put the data on disk. */
static int l_fsync(lua_State *L) {
  FILE *f = check_file(L, 1);
  if (fflush(f) != 0) return fail_errno(L, "fflush", errno);
  if (fsync(fileno(f)) != 0) return fail_errno(L, "fsync", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* fsync_dir(path): makes a create or rename inside the directory durable. */
static int l_fsync_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc, err;
  if (fd < 0) return fail_errno(L, "open directory", errno);
  rc = fsync(fd);
  err = errno;
  close(fd);
  if (rc != 0) return fail_errno(L, "fsync directory", err);
  lua_pushboolean(L, 1);
  return 1;
}

/* truncate(file, size): cut the file to `size` bytes and leave the position
 * at the new end, so the next write appends there. */
static int l_truncate(lua_State *L) {
  FILE *f = check_file(L, 1);
  lua_Integer size = (lua_Integer)luaL_checknumber(L, 2);
  luaL_argcheck(L, size >= 0, 2, "size must be >= 0");
  if (fflush(f) != 0) return fail_errno(L, "fflush", errno);
  if (ftruncate(fileno(f), (off_t)size) != 0) return fail_errno(L, "ftruncate", errno);
  if (fseeko(f, (off_t)size, SEEK_SET) != 0) return fail_errno(L, "fseek", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* size(file): bytes on disk after flushing Lua's buffer. */
static int l_size(lua_State *L) {
  FILE *f = check_file(L, 1);
  struct stat st;
  if (fflush(f) != 0) return fail_errno(L, "fflush", errno);
  if (fstat(fileno(f), &st) != 0) return fail_errno(L, "fstat", errno);
  lua_pushinteger(L, (lua_Integer)st.st_size);
  return 1;
}

/* lock(file): an exclusive flock on the file, without waiting: true, or
 * false when another open file (another process) holds it. The lock goes
 * with the descriptor: closing the file, or the process dying (kill -9),
 * releases it. The descriptor is made close-on-exec so that a child the
 * holder starts cannot keep the lock alive after the holder is gone. */
static int l_lock(lua_State *L) {
  FILE *f = check_file(L, 1);
  int fd = fileno(f);
  int flags = fcntl(fd, F_GETFD);
  if (flags >= 0) (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) {
      lua_pushboolean(L, 0);
      return 1;
    }
    return fail_errno(L, "flock", errno);
  }
  lua_pushboolean(L, 1);
  return 1;
}

int wxhw_open_fileio(lua_State *L) {
  static const luaL_Reg funcs[] = {{"fsync", l_fsync},
                                   {"fsync_dir", l_fsync_dir},
                                   {"truncate", l_truncate},
                                   {"size", l_size},
                                   {"lock", l_lock},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
