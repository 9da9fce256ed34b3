/* The event loop of wxhw.http: curl_multi_socket_action driven by epoll, so
 * each wake-up touches only the transfers whose sockets are ready
 * (curl_multi_perform would poll every transfer's socket on every call).
 * Sockets of the direct engine share the epoll set: once connected they are
 * handed over (wxhw_loop_watch) and their readiness goes to on_direct. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/socket.h>
#endif

#include "http_int.h"

static long long now_ms(void) { return (long long)(wxhw_monotonic() * 1000.0); }

long long wxhw_loop_now_ms(void) { return now_ms(); }

static int on_timer(CURLM *m, long timeout_ms, void *ud) {
  wxhw_loop *l = ud;
  (void)m;
  l->deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  return 0;
}

#ifdef __linux__
/* Per-descriptor state in l->reg: */
#define REG_EV 0x03      /* the events epoll watches: 1 = in, 2 = out */
#define REG_WANTED 0x04  /* curl currently wants events on it */
#define REG_POLLED 0x08  /* in the epoll set */
#define REG_OURS 0x10    /* opened by on_open: its close reaches on_close */
#define REG_DIRECT 0x20  /* handed over to the direct engine: curl no longer drives it */

static unsigned char *reg_slot(wxhw_loop *l, curl_socket_t s) {
  if (s < 0) return NULL;
  if ((size_t)s >= l->nreg) {
    size_t n = l->nreg ? l->nreg : 64;
    unsigned char *r;
    while (n <= (size_t)s) n *= 2;
    if ((r = realloc(l->reg, n)) == NULL) return NULL;
    memset(r + l->nreg, 0, n - l->nreg);
    l->reg = r;
    l->nreg = n;
  }
  return &l->reg[s];
}

/* A socket curl is done with stays in the epoll set ("parked") when its
 * close is known to reach on_close: the next transfer on that keep-alive
 * connection then needs no epoll_ctl at all. Other descriptors (the
 * resolver's socketpair) are removed at once, as the kernel could reuse
 * their number behind our back. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *ud, void *sockp) {
  wxhw_loop *l = ud;
  struct epoll_event ev;
  unsigned char *r = reg_slot(l, s), want;
  (void)e;
  (void)sockp;
  if (!r) return -1;
  if (*r & REG_DIRECT) return 0; /* a CONNECT_ONLY socket: the direct engine watches it */
  if (what == CURL_POLL_REMOVE) {
    if ((*r & REG_POLLED) && !(*r & REG_OURS)) {
      epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
      *r = 0;
    }
    *r &= (unsigned char)~REG_WANTED;
    return 0;
  }
  want = (unsigned char)(((what & CURL_POLL_IN) ? 1 : 0) | ((what & CURL_POLL_OUT) ? 2 : 0));
  if ((*r & REG_POLLED) && (*r & REG_EV) == want) {
    *r |= REG_WANTED;
    return 0;
  }
  ev.events = ((want & 1) ? EPOLLIN : 0) | ((want & 2) ? EPOLLOUT : 0);
  ev.data.fd = s;
  if (epoll_ctl(l->epfd, (*r & REG_POLLED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) != 0) {
    if (errno != ENOENT && errno != EEXIST) return -1;
    if (epoll_ctl(l->epfd, errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s, &ev) != 0) return -1;
  }
  *r = (unsigned char)((*r & REG_OURS) | REG_POLLED | REG_WANTED | want);
  return 0;
}

static curl_socket_t on_open(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  wxhw_loop *l = ud;
  curl_socket_t s = socket(a->family, a->socktype, a->protocol);
  unsigned char *r;
  (void)purpose;
  if (s == CURL_SOCKET_BAD) return s;
  if (l->epfd >= 0 && (r = reg_slot(l, s)) != NULL) *r = REG_OURS;
  return s;
}

static int on_close(void *ud, curl_socket_t s) {
  wxhw_loop *l = ud;
  /* closing drops it from the epoll set too */
  if ((size_t)s < l->nreg) l->reg[s] = 0;
  return close(s);
}
#endif

#ifdef __linux__
int wxhw_loop_watch(wxhw_loop *l, int fd, unsigned events) {
  unsigned char *r = reg_slot(l, fd), want = (unsigned char)(events & 3);
  struct epoll_event ev;
  if (!r) return -1;
  if ((*r & REG_DIRECT) && (*r & REG_POLLED) && (*r & REG_EV) == want) return 0;
  if (want == 0) {
    if (*r & REG_POLLED) epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    *r = (unsigned char)((*r & REG_OURS) | REG_DIRECT);
    return 0;
  }
  ev.events = ((want & 1) ? EPOLLIN : 0) | ((want & 2) ? EPOLLOUT : 0);
  ev.data.fd = fd;
  if (epoll_ctl(l->epfd, (*r & REG_POLLED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0) {
    if (errno != ENOENT && errno != EEXIST) return -1;
    if (epoll_ctl(l->epfd, errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) != 0) return -1;
  }
  *r = (unsigned char)((*r & REG_OURS) | REG_DIRECT | REG_POLLED | want);
  return 0;
}
#endif

#ifndef __linux__
int wxhw_loop_watch(wxhw_loop *l, int fd, unsigned events) {
  (void)l, (void)fd, (void)events;
  return -1; /* the direct engine is Linux-only (epoll) */
}
#endif

/* Sockets of `e` are opened and closed through the loop, so it can keep
 * idle keep-alive sockets in its epoll set. */
int wxhw_loop_attach(wxhw_loop *l, CURL *e) {
#ifdef __linux__
  if (curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, l) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, l) != CURLE_OK)
    return -1;
#else
  (void)l;
  (void)e;
#endif
  return 0;
}

int wxhw_loop_init(wxhw_loop *l, long max_connections) {
  l->deadline = -1;
  l->wake = -1;
  l->on_direct = NULL;
  l->direct_ud = NULL;
  l->reg = NULL;
  l->nreg = 0;
  l->epfd = -1;
  l->multi = curl_multi_init();
  if (!l->multi) return -1;
  curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
  curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, max_connections);
#ifdef __linux__
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (l->epfd < 0) {
    curl_multi_cleanup(l->multi);
    l->multi = NULL;
    return -1;
  }
  curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
  curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
#endif
  return 0;
}

void wxhw_loop_free(wxhw_loop *l) {
  if (l->multi) curl_multi_cleanup(l->multi);
  l->multi = NULL;
  free(l->reg); /* on_close may still run (share cleanup): it checks nreg */
  l->reg = NULL;
  l->nreg = 0;
#ifdef __linux__
  if (l->epfd >= 0) close(l->epfd);
#endif
  l->epfd = -1;
}

CURLMcode wxhw_loop_step(wxhw_loop *l) {
  int running = 0;
#ifdef __linux__
  struct epoll_event ev[64];
  int i, n, wait;
  long long left = 0;
  if (l->deadline >= 0 && (left = l->deadline - now_ms()) <= 0) {
    l->deadline = -1;
    return curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  wait = l->deadline < 0 ? 1000 : (int)(left > 1000 ? 1000 : left);
  if (l->wake >= 0) {
    long long w = l->wake - now_ms();
    if (w < 0) w = 0;
    if (w < wait) wait = (int)w;
  }
  n = epoll_wait(l->epfd, ev, (int)(sizeof ev / sizeof ev[0]), wait);
  if (n < 0) return errno == EINTR ? CURLM_OK : CURLM_INTERNAL_ERROR;
  for (i = 0; i < n; i++) {
    int fd = ev[i].data.fd, flags;
    CURLMcode rc;
    if ((size_t)fd < l->nreg && (l->reg[fd] & REG_DIRECT)) {
      if (l->on_direct)
        l->on_direct(l->direct_ud, fd,
                     ((ev[i].events & EPOLLIN) ? 1u : 0u) | ((ev[i].events & EPOLLOUT) ? 2u : 0u) |
                         ((ev[i].events & (EPOLLERR | EPOLLHUP)) ? 4u : 0u));
      continue;
    }
    if ((size_t)fd < l->nreg && !(l->reg[fd] & REG_WANTED)) {
      /* a parked socket woke up (peer closed it, most likely): stop watching;
       * curl finds it dead when it next looks at that connection */
      epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
      l->reg[fd] &= (unsigned char)REG_OURS;
      continue;
    }
    flags = ((ev[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
            ((ev[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
            ((ev[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
    rc = curl_multi_socket_action(l->multi, fd, flags, &running);
    if (rc != CURLM_OK) return rc;
  }
  if (l->deadline >= 0 && l->deadline <= now_ms()) {
    l->deadline = -1;
    return curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  return CURLM_OK;
#else
  CURLMcode rc = curl_multi_perform(l->multi, &running);
  if (rc == CURLM_OK && running > 0) rc = curl_multi_poll(l->multi, NULL, 0, 1000, NULL);
  return rc;
#endif
}
