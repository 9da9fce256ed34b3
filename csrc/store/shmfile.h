/* Internal: a file mapped MAP_SHARED by every process of one host that opens
 * the same path, guarded by one process-shared robust mutex (shmfile.c).
 * Used by the shm token store and the shm key-value store. */
#ifndef WXHW_SHMFILE_H
#define WXHW_SHMFILE_H

#include <pthread.h>
#include <stddef.h>

#include "wxhw.h"

#pragma GCC visibility push(hidden)

typedef struct {
  const char *what;  /* "token store", "kv store": for messages */
  const char *magic; /* 8 bytes at offset 0 of the file */
  size_t create_len; /* size of a new file */
  /* Fills a new (zeroed) mapping of create_len bytes, except the magic,
   * which is written last so a half-initialised file is redone. */
  void (*init)(void *map, void *arg);
  /* Length the file needs given its first `head` bytes (a header with the
   * right magic), or 0 when the layout is not ours. */
  size_t (*layout)(const void *hdr, void *arg);
  /* Whether an existing file with the right magic must be initialised again
   * (e.g. written in another boot); NULL = never. */
  int (*stale)(const void *hdr, void *arg);
  /* Refuse a non-empty file without the magic unless it has exactly
   * create_len bytes (an initialiser that crashed) rather than overwrite it. */
  int refuse_foreign;
  /* Map with MAP_POPULATE: page faults at open rather than on the hot path
   * (a hash table touches its pages at random). */
  int populate;
  size_t head; /* bytes of header read for layout() (<= 4096) */
  void *arg;
} wxhw_shmfile_spec;

/* Opens or creates `path` (mode 0600, owned by us, a regular file, no
 * symlink), initialising it under an fcntl lock when it carries no magic.
 * Returns the mapping (and its length) or NULL with a message in err. */
void *wxhw_shmfile_map(const char *path, const wxhw_shmfile_spec *spec, size_t *len, char *err,
                       size_t errlen);

/* A process-shared robust mutex in the mapping. */
void wxhw_shm_mutex_init(pthread_mutex_t *mu);

/* Locks mu; when its last holder died inside the critical section calls
 * repair(arg) before marking it consistent (*recovered set to 1).
 * Returns 0 or an errno. */
int wxhw_shm_lock(pthread_mutex_t *mu, void (*repair)(void *arg), void *arg);

#pragma GCC visibility pop

#endif
