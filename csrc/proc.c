/* Processes without a shell: start a child with posix_spawn, wait for it,
 * signal it, ask whether it lives. The Lua modules once wrote these as
 * `sh -c "(cmd) & echo $!"`, `kill PID` and `test -d /proc/PID`: one quoting
 * mistake from running something else, and a fork of a shell each time.
 * Expected failures return nil, err ("io" errors with the errno text). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wxhw.h"

extern char **environ;

/* posix_spawn takes char *const[]; the strings are never written. */
static char *unconst(const char *s) {
  union {
    const char *c;
    char *m;
  } u;
  u.c = s;
  return u.m;
}

static int fail_errno(lua_State *L, const char *what, int err) {
  return wxhw_fail(L, "io", "%s: %s", what, strerror(err));
}

static pid_t check_pid(lua_State *L, int idx) {
  lua_Number n = luaL_checknumber(L, idx);
  luaL_argcheck(L, n >= 1 && n <= 0x7fffffff && n == (lua_Number)(pid_t)n, idx, "pid must be a positive integer");
  return (pid_t)n;
}

static const struct {
  const char *name;
  int sig;
} signals[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
               {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
               {"TERM", SIGTERM}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},
               {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH}};

/* A signal given as a number (0 probes) or a name with or without "SIG". */
static int check_signal(lua_State *L, int idx) {
  size_t i;
  const char *name;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, idx);
    luaL_argcheck(L, n >= 0 && n < 65 && n == (lua_Number)(int)n, idx, "not a signal number");
    return (int)n;
  }
  name = luaL_optstring(L, idx, "TERM");
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (strcmp(name, signals[i].name) == 0) return signals[i].sig;
  return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", name));
}

/* kill(pid, sig = "TERM"): true, or nil, err ("no such process" when it is gone). */
static int l_kill(lua_State *L) {
  pid_t pid = check_pid(L, 1);
  int sig = check_signal(L, 2);
  if (kill(pid, sig) != 0) return fail_errno(L, "kill", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* alive(pid): whether the process still runs. A child of ours that exited is
 * reaped here (its exit status is dropped: use wait() to read it), so a
 * zombie never counts as alive. */
static int l_alive(lua_State *L) {
  pid_t pid = check_pid(L, 1);
  int status;
  pid_t r;
  do r = waitpid(pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == pid) lua_pushboolean(L, 0);
  else if (r == 0) lua_pushboolean(L, 1);
  else lua_pushboolean(L, kill(pid, 0) == 0 || errno == EPERM); /* not our child */
  return 1;
}

/* wait(pid, nohang): "exit", code | "signal", signo; false when nohang and
 * the child still runs; nil, err (e.g. not our child). */
static int l_wait(lua_State *L) {
  pid_t pid = check_pid(L, 1);
  int nohang = lua_toboolean(L, 2), status = 0;
  pid_t r;
  do r = waitpid(pid, &status, nohang ? WNOHANG : 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return fail_errno(L, "waitpid", errno);
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (WIFSIGNALED(status)) {
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, WTERMSIG(status));
  } else {
    lua_pushliteral(L, "exit");
    lua_pushinteger(L, WEXITSTATUS(status));
  }
  return 2;
}

static int l_nproc(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? (lua_Integer)n : 1);
  return 1;
}

static int l_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* What spawn builds and must free whatever happens: argv and envp point into
 * strings the Lua stack keeps alive for the call. */
struct spawn_job {
  char **argv, **envp, *program;
  int fds[3]; /* opened for the child's 0, 1, 2; -1 when not */
  int append;  /* output paths are appended to (>>), not truncated */
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int fa_ok, attr_ok;
};

static void spawn_job_free(struct spawn_job *j) {
  int i;
  free(j->argv);
  free(j->envp);
  free(j->program);
  for (i = 0; i < 3; i++) {
    if (j->fds[i] >= 0) close(j->fds[i]);
    j->fds[i] = -1;
  }
  j->argv = j->envp = NULL;
  j->program = NULL;
  if (j->fa_ok) posix_spawn_file_actions_destroy(&j->fa);
  if (j->attr_ok) posix_spawnattr_destroy(&j->attr);
  j->fa_ok = j->attr_ok = 0;
}

static int spawn_job_gc(lua_State *L) {
  spawn_job_free((struct spawn_job *)lua_touserdata(L, 1));
  return 0;
}

/* opts[field]: nil inherits the descriptor, "null" is /dev/null, "stdout"
 * (stderr only) shares standard output, anything else is a path (created,
 * and for output truncated, or appended to with opts.append). Opened here, not by the child, so that a path that
 * cannot be opened is our error (a child's failure would only show as its
 * exit status). 0, or nil, err pushed and returned as 2. */
static int add_stream(lua_State *L, struct spawn_job *j, const char *field, int fd) {
  const char *v, *path;
  int rc;
  lua_getfield(L, 2, field);
  if (lua_isnil(L, -1)) return 0;
  if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "spawn: %s must be a path, \"null\" or nil", field);
  v = lua_tostring(L, -1);
  if (fd == 2 && strcmp(v, "stdout") == 0) rc = posix_spawn_file_actions_adddup2(&j->fa, 1, 2);
  else {
    path = strcmp(v, "null") == 0 ? "/dev/null" : v;
    int out = O_WRONLY | O_CREAT | (j->append ? O_APPEND : O_TRUNC);
    j->fds[fd] = open(path, (fd == 0 ? O_RDONLY : out) | O_CLOEXEC, 0644);
    if (j->fds[fd] < 0) return wxhw_fail(L, "io", "spawn: %s %s: %s", field, path, strerror(errno));
    rc = posix_spawn_file_actions_adddup2(&j->fa, j->fds[fd], fd);
  }
  if (rc != 0) return fail_errno(L, "spawn", rc);
  return 0;
}

/* close_fds = true: the child keeps only 0, 1 and 2. Descriptors the io
 * library or luasocket opened are not close-on-exec, and a child holding a
 * server's socket keeps a peer waiting for a close that never comes. */
static int close_fds(struct spawn_job *j) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  return posix_spawn_file_actions_addclosefrom_np(&j->fa, 3);
#else
  /* each descriptor open now and not close-on-exec (the ones we opened for
   * the child's streams are, and their copies on 0-2 are not touched) */
  long fd, max = sysconf(_SC_OPEN_MAX);
  int rc;
  if (max < 0 || max > 65536) max = 65536;
  for (fd = 3; fd < max; fd++) {
    int flags = fcntl((int)fd, F_GETFD);
    if (flags < 0 || (flags & FD_CLOEXEC)) continue;
    if ((rc = posix_spawn_file_actions_addclose(&j->fa, (int)fd)) != 0) return rc;
  }
  return 0;
#endif
}

/* The child's environment: ours, with opts.env's names set (a string) or
 * removed (false). */
static char **build_env(lua_State *L, int env_idx, int anchor_idx) {
  size_t n = 0, k = 0, i;
  char **envp;
  for (i = 0; environ[i]; i++) n++;
  lua_pushnil(L);
  while (lua_next(L, env_idx)) {
    if (lua_type(L, -2) != LUA_TSTRING || strchr(lua_tostring(L, -2), '=') ||
        (lua_type(L, -1) != LUA_TSTRING && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1))))
      luaL_error(L, "spawn: env maps names (without '=') to a string or false");
    n++;
    lua_pop(L, 1);
  }
  envp = (char **)malloc((n + 1) * sizeof *envp);
  if (!envp) return NULL;
  for (i = 0; environ[i]; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    lua_pushlstring(L, environ[i], len);
    lua_rawget(L, env_idx);
    if (lua_isnil(L, -1)) envp[k++] = environ[i];
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, env_idx)) {
    if (lua_type(L, -1) == LUA_TSTRING) {
      lua_pushvalue(L, -2);
      lua_pushliteral(L, "=");
      lua_pushvalue(L, -3);
      lua_concat(L, 3);
      lua_pushvalue(L, -1);
      lua_rawseti(L, anchor_idx, (int)k + 1); /* the anchor table keeps the string alive */
      envp[k++] = unconst(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  envp[k] = NULL;
  return envp;
}

/* The program's path as execvp would find it: argv[1] itself when it holds
 * a "/", else the first executable of that name on PATH. Looked up here, not
 * left to posix_spawnp, so that a missing program is an error on every
 * platform (under valgrind, whose fork cannot report the failed exec, the
 * spawn "succeeded" and the child exited 127). NULL with errno set. */
static int executable(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return 0;
  if (!S_ISREG(st.st_mode)) {
    errno = EACCES;
    return 0;
  }
  return access(path, X_OK) == 0;
}

static char *find_program(const char *name) {
  const char *path = getenv("PATH"), *p;
  size_t nlen = strlen(name);
  int err = ENOENT;
  if (nlen == 0) {
    errno = ENOENT;
    return NULL;
  }
  if (strchr(name, '/')) return executable(name) ? strdup(name) : NULL;
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  for (p = path;; p++) {
    const char *end = strchr(p, ':');
    size_t dlen = end ? (size_t)(end - p) : strlen(p);
    char *full = (char *)malloc(dlen + nlen + 3);
    if (!full) return NULL;
    if (dlen == 0) full[dlen++] = '.'; /* an empty PATH entry is the working directory */
    else memcpy(full, p, dlen);
    full[dlen] = '/';
    memcpy(full + dlen + 1, name, nlen + 1);
    if (executable(full)) return full;
    if (errno == EACCES) err = EACCES;
    free(full);
    if (!end) break;
    p = end;
  }
  errno = err;
  return NULL;
}

/* spawn(argv, opts): the child's pid, or nil, err (program not found, a
 * stream path that cannot be opened...). argv[1] is looked up on PATH unless
 * it holds a "/" (find_program). opts: stdin, stdout, stderr (see add_stream), env (table of
 * name -> string | false), background = true (SIGINT and SIGQUIT ignored in
 * the child, as a shell's `cmd &` does: a Ctrl-C at the terminal is for us),
 * close_fds = true (close_fds), append = true (output paths as >>). */
static int l_spawn(lua_State *L) {
  struct spawn_job *j;
  int n, i, rc, background;
  pid_t pid;
  sigset_t dflt, block, oldmask;
  struct sigaction ign, old_int, old_quit;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  n = (int)lua_rawlen(L, 1);
  luaL_argcheck(L, n >= 1, 1, "argv needs the program");
  luaL_checkstack(L, n + 16, "spawn");
  j = (struct spawn_job *)lua_newuserdata(L, sizeof *j); /* 3 */
  memset(j, 0, sizeof *j);
  j->fds[0] = j->fds[1] = j->fds[2] = -1;
  lua_newtable(L); /* 4: its metatable frees the job on any error */
  lua_pushcfunction(L, spawn_job_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, 3);
  lua_newtable(L); /* 4: anchors the env strings */
  j->argv = (char **)calloc((size_t)n + 1, sizeof *j->argv);
  if (!j->argv) return luaL_error(L, "spawn: out of memory");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      return luaL_error(L, "spawn: argv[%d] must be a string", i);
    lua_tostring(L, -1);
    lua_rawseti(L, 4, -i); /* anchored (negative keys stay clear of env's) */
    lua_rawgeti(L, 4, -i);
    j->argv[i - 1] = unconst(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  if ((j->program = find_program(j->argv[0])) == NULL)
    return wxhw_fail(L, "io", "spawn %s: %s", j->argv[0], strerror(errno));
  lua_getfield(L, 2, "env"); /* 5 */
  if (!lua_isnil(L, 5)) {
    luaL_argcheck(L, lua_type(L, 5) == LUA_TTABLE, 2, "env must be a table");
    j->envp = build_env(L, 5, 4);
    if (!j->envp) return luaL_error(L, "spawn: out of memory");
  }
  if (posix_spawn_file_actions_init(&j->fa) != 0) return luaL_error(L, "spawn: out of memory");
  j->fa_ok = 1;
  if (posix_spawnattr_init(&j->attr) != 0) return luaL_error(L, "spawn: out of memory");
  j->attr_ok = 1;
  lua_getfield(L, 2, "append");
  j->append = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (add_stream(L, j, "stdin", 0) || add_stream(L, j, "stdout", 1) || add_stream(L, j, "stderr", 2)) return 2;
  lua_getfield(L, 2, "close_fds");
  if (lua_toboolean(L, -1) && (rc = close_fds(j)) != 0) return fail_errno(L, "spawn", rc);
  lua_pop(L, 1);
  lua_getfield(L, 2, "background");
  background = lua_toboolean(L, -1);
  lua_pop(L, 1);
  /* SIGPIPE back to its default: a parent that loaded luasocket ignores it */
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGPIPE);
  posix_spawnattr_setsigdefault(&j->attr, &dflt);
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGQUIT);
  /* An ignored signal stays ignored across exec, so a background child gets
   * them ignored from us for the instant of the spawn; blocked meanwhile, so
   * one that comes then reaches our own handler afterwards. */
  if (background) {
    pthread_sigmask(SIG_BLOCK, &block, &oldmask);
    posix_spawnattr_setsigmask(&j->attr, &oldmask);
    posix_spawnattr_setflags(&j->attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
  } else {
    posix_spawnattr_setflags(&j->attr, POSIX_SPAWN_SETSIGDEF);
  }
  rc = posix_spawn(&pid, j->program, &j->fa, &j->attr, j->argv, j->envp ? j->envp : environ);
  if (background) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
  }
  spawn_job_free(j);
  if (rc != 0) {
    lua_rawgeti(L, 4, -1);
    return wxhw_fail(L, "io", "spawn %s: %s", lua_tostring(L, -1), strerror(rc));
  }
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

int wxhw_open_proc(lua_State *L) {
  static const luaL_Reg funcs[] = {{"spawn", l_spawn}, {"wait", l_wait},   {"kill", l_kill}, {"alive", l_alive},
                                   {"nproc", l_nproc}, {"pid", l_pid}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
