/* A file mapped by several processes with one robust mutex (shmfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shmfile.h"

void wxhw_shm_mutex_init(pthread_mutex_t *mu) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(mu, &a);
  pthread_mutexattr_destroy(&a);
}

/* A robust mutex still has two ways to wedge when processes are killed
 * (both seen under kill -9 on Linux 6.18 with glibc 2.36, in C alone):
 *   - a waiter woken by an unlock is killed before it takes the lock while a
 *     third process barges in: the wake-up is spent, FUTEX_WAITERS is gone,
 *     and the other waiters sleep with the lock free;
 *   - the futex word keeps the id of an owner that is gone (the kernel's
 *     robust-list cleanup did not run for it): nobody will ever wake them.
 * So a waiter sleeps in slices. Each slice that expires retries (which heals
 * the first case) and, when the word names a thread that no longer exists
 * or is a zombie (its exit cleanup is over), marks it owner-dead the way the
 * kernel would, so the next attempt gets EOWNERDEAD and repairs the table.
 * A slice only ends while another process holds the lock or a wake-up was
 * lost: the uncontended path is one compare-and-swap, as before. Processes
 * sharing a table must share a pid namespace (nginx workers do): the word
 * holds a thread id as the owner sees it. */
#define WAIT_SLICE_NS 20000000L /* 20 ms */

static int thread_gone(pid_t tid) {
  char path[64], st[256];
  ssize_t n;
  int fd;
  if (kill(tid, 0) != 0) return errno == ESRCH;
  /* Alive or a zombie: /proc/<tid>/stat says which ("pid (comm) S ..."). */
  snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  n = read(fd, st, sizeof st - 1);
  close(fd);
  if (n <= 0) return 0;
  st[n] = 0;
  {
    const char *r = strrchr(st, ')'); /* comm may hold spaces and parens */
    return r && r[1] == ' ' && (r[2] == 'Z' || r[2] == 'X');
  }
}

static void reclaim_if_orphaned(pthread_mutex_t *mu) {
#ifdef __GLIBC__
  unsigned *word = (unsigned *)&mu->__data.__lock; /* glibc's futex word */
  unsigned v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
  pid_t tid = (pid_t)(v & FUTEX_TID_MASK);
  if (tid == 0 || (v & FUTEX_OWNER_DIED) || !thread_gone(tid)) return;
  /* What the kernel does for a dead owner: keep the waiters bit, drop the
   * id, set owner-died, and wake one waiter. Fails harmlessly if the word
   * moved meanwhile. */
  if (__atomic_compare_exchange_n(word, &v, (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED, 0, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE))
    syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
#else
  (void)mu; /* other C libraries: the timed retry alone */
#endif
}

/* Tries before sleeping. A holder keeps the lock for a probe and a copy
 * (well under a microsecond), while a glibc robust mutex never spins: every
 * contended lock was a futex sleep and wake-up, two system calls, in each
 * of the processes. */
#define SPIN_TRIES 100

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int consistent_after(pthread_mutex_t *mu, int rc, void (*repair)(void *arg), void *arg) {
  if (rc == EOWNERDEAD) {
    /* The previous holder died inside a critical section. */
    if (repair) repair(arg);
    pthread_mutex_consistent(mu);
    rc = 0;
  }
  return rc;
}

int wxhw_shm_lock(pthread_mutex_t *mu, void (*repair)(void *arg), void *arg) {
  int i;
  for (i = 0; i < SPIN_TRIES; i++) {
    int rc = pthread_mutex_trylock(mu);
    if (rc != EBUSY) return consistent_after(mu, rc, repair, arg);
    cpu_relax();
  }
  for (;;) {
    struct timespec until;
    int rc;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += WAIT_SLICE_NS;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    rc = pthread_mutex_clocklock(mu, CLOCK_MONOTONIC, &until);
    if (rc != ETIMEDOUT) return consistent_after(mu, rc, repair, arg);
    reclaim_if_orphaned(mu);
  }
}

static int init_file(int fd, const wxhw_shmfile_spec *spec, char *err, size_t errlen) {
  void *map;
  /* Truncating to 0 first zeroes whatever a crashed initialiser left. */
  if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)spec->create_len) != 0) {
    snprintf(err, errlen, "cannot size %s file: %s", spec->what, strerror(errno));
    return -1;
  }
  /* Reserve the space now: a sparse file on a full tmpfs would SIGBUS on a
   * later first write instead of failing here. */
  int rc = posix_fallocate(fd, 0, (off_t)spec->create_len);
  if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
    snprintf(err, errlen, "cannot allocate %zu bytes for %s file: %s", spec->create_len, spec->what, strerror(rc));
    return -1;
  }
  map = mmap(NULL, spec->create_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    snprintf(err, errlen, "cannot map %s file: %s", spec->what, strerror(errno));
    return -1;
  }
  spec->init(map, spec->arg);
  memcpy(map, spec->magic, 8);
  msync(map, 4096 < spec->create_len ? 4096 : spec->create_len, MS_SYNC);
  munmap(map, spec->create_len);
  return 0;
}

void *wxhw_shmfile_map(const char *path, const wxhw_shmfile_spec *spec, size_t *lenp, char *err,
                       size_t errlen) {
  int fd;
  struct stat st;
  struct flock fl;
  char hdr[4096];
  size_t len, head = spec->head < sizeof hdr ? spec->head : sizeof hdr;
  void *map = NULL;

  fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open %s %s: %s", spec->what, path, strerror(errno));
    return NULL;
  }
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  /* fcntl lock only while checking/initialising the layout. */
  while (fcntl(fd, F_SETLKW, &fl) != 0) {
    if (errno != EINTR) {
      snprintf(err, errlen, "cannot lock %s %s: %s", spec->what, path, strerror(errno));
      goto done;
    }
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s %s is not a regular file", spec->what, path);
    goto done;
  }
  if (st.st_uid != geteuid()) {
    snprintf(err, errlen, "%s %s belongs to another user; refusing to use it", spec->what, path);
    goto done;
  }
  if ((st.st_mode & 077) != 0) {
    snprintf(err, errlen, "%s %s is accessible by group or others (mode %03o); chmod 600 it", spec->what,
             path, (unsigned)(st.st_mode & 0777));
    goto done;
  }
  memset(hdr, 0, sizeof hdr);
  if ((size_t)st.st_size < head || pread(fd, hdr, head, 0) != (ssize_t)head ||
      memcmp(hdr, spec->magic, 8) != 0 || (spec->stale && spec->stale(hdr, spec->arg))) {
    if (spec->refuse_foreign && st.st_size != 0 && (size_t)st.st_size != spec->create_len &&
        memcmp(hdr, spec->magic, 8) != 0) {
      snprintf(err, errlen, "%s is not a %s file (no wxhw magic); refusing to overwrite it", path, spec->what);
      goto done;
    }
    if (init_file(fd, spec, err, errlen) != 0) goto done;
    if (pread(fd, hdr, head, 0) != (ssize_t)head) {
      snprintf(err, errlen, "cannot read %s %s", spec->what, path);
      goto done;
    }
  }
  len = spec->layout(hdr, spec->arg);
  if (len == 0) {
    snprintf(err, errlen, "%s %s has an incompatible layout (another shape or wxhw version)", spec->what, path);
    goto done;
  }
  if (fstat(fd, &st) != 0 || (size_t)st.st_size < len) {
    snprintf(err, errlen, "%s %s is truncated", spec->what, path);
    goto done;
  }
  map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | (spec->populate ? MAP_POPULATE : 0), fd, 0);
  if (map == MAP_FAILED) {
    snprintf(err, errlen, "cannot map %s %s: %s", spec->what, path, strerror(errno));
    map = NULL;
    goto done;
  }
  *lenp = len;
done:
  close(fd); /* drops the fcntl lock; the mapping stays valid */
  return map;
}
