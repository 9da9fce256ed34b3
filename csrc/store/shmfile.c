/* A file mapped by several processes with one robust mutex (shmfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

int wxhw_shm_lock(pthread_mutex_t *mu, void (*repair)(void *arg), void *arg) {
  int rc = pthread_mutex_lock(mu);
  if (rc == EOWNERDEAD) {
    /* The previous holder died inside a critical section. */
    if (repair) repair(arg);
    pthread_mutex_consistent(mu);
    rc = 0;
  }
  return rc;
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
