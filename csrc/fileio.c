/* File primitives the io library lacks. Durable files for journals and
 * manifests: Lua's io library can flush to the kernel but not to the disk, and
 * cannot cut a torn tail off a file. Directories, modes, private files, the
 * working directory and terminals, without a shell (mkdir -p, umask, pwd,
 * test -t). Works on the io library's own file handles ("FILE*" userdata), whose
 * first member is the FILE pointer in Lua 5.1-5.4 and LuaJIT alike. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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

/* A permission mode: a number (Lua has no octal literals: 384 is 0600) or
 * octal digits as a string ("600", "0755"). */
static mode_t check_mode(lua_State *L, int idx, mode_t dflt) {
  if (lua_isnoneornil(L, idx)) return dflt;
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tostring(L, idx);
    char *end;
    long m = strtol(s, &end, 8);
    luaL_argcheck(L, *s && !*end && m >= 0 && m <= 07777, idx, "mode must be octal digits such as \"600\"");
    return (mode_t)m;
  } else {
    lua_Number m = luaL_checknumber(L, idx);
    luaL_argcheck(L, m >= 0 && m <= 07777 && m == (lua_Number)(int)m, idx, "mode out of range");
    return (mode_t)m;
  }
}

/* mkdir_p(path, mode = "777"): creates the directory and its missing parents
 * (the umask applies, as with mkdir -p); true when it is there. */
static int l_mkdir_p(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  mode_t mode = check_mode(L, 2, 0777);
  struct stat st;
  char *buf, *p;
  int err = 0;
  luaL_argcheck(L, len > 0, 1, "empty path");
  buf = (char *)malloc(len + 1);
  if (!buf) return luaL_error(L, "mkdir_p: out of memory");
  memcpy(buf, path, len + 1);
  for (p = buf + 1;; p++) { /* each prefix ending before a '/', then the whole */
    char c = *p;
    if (c != '/' && c != '\0') continue;
    *p = '\0';
    /* an existing directory may answer EACCES or EROFS before EEXIST */
    if (mkdir(buf, mode) != 0) {
      int mkerr = errno;
      if (stat(buf, &st) != 0) err = mkerr;
      else if (!S_ISDIR(st.st_mode)) err = ENOTDIR;
    }
    *p = c;
    if (err || c == '\0') break;
  }
  free(buf);
  if (err) return wxhw_fail(L, "io", "mkdir %s: %s", path, strerror(err));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_chmod(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = check_mode(L, 2, 0);
  luaL_argcheck(L, !lua_isnoneornil(L, 2), 2, "mode expected");
  if (chmod(path, mode) != 0) return wxhw_fail(L, "io", "chmod %s: %s", path, strerror(errno));
  lua_pushboolean(L, 1);
  return 1;
}

/* create_private(path): an empty file only its owner can read or write
 * (0600 whatever the umask, also when it existed: it is truncated and its
 * mode set). A symbolic link there is refused. For secrets written next. */
static int l_create_private(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  int err;
  if (fd < 0) return wxhw_fail(L, "io", "create %s: %s", path, strerror(errno));
  err = fchmod(fd, 0600) != 0 ? errno : 0;
  close(fd);
  if (err) return wxhw_fail(L, "io", "chmod %s: %s", path, strerror(err));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_getcwd(lua_State *L) {
  size_t size = 256;
  for (;;) {
    char *buf = (char *)malloc(size);
    if (!buf) return luaL_error(L, "getcwd: out of memory");
    if (getcwd(buf, size)) {
      lua_pushstring(L, buf);
      free(buf);
      return 1;
    }
    free(buf);
    if (errno != ERANGE || size > (1u << 20)) return fail_errno(L, "getcwd", errno);
    size *= 2;
  }
}

/* isatty(fd | file): whether it is a terminal (0, 1, 2 or an io file). */
static int l_isatty(lua_State *L) {
  int fd;
  if (lua_type(L, 1) == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, 1);
    luaL_argcheck(L, n >= 0 && n < 1 << 20 && n == (lua_Number)(int)n, 1, "not a descriptor");
    fd = (int)n;
  } else
    fd = fileno(check_file(L, 1));
  lua_pushboolean(L, isatty(fd) == 1);
  return 1;
}

int wxhw_open_fileio(lua_State *L) {
  static const luaL_Reg funcs[] = {{"fsync", l_fsync},
                                   {"fsync_dir", l_fsync_dir},
                                   {"truncate", l_truncate},
                                   {"size", l_size},
                                   {"lock", l_lock},
                                   {"mkdir_p", l_mkdir_p},
                                   {"chmod", l_chmod},
                                   {"create_private", l_create_private},
                                   {"getcwd", l_getcwd},
                                   {"isatty", l_isatty},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
