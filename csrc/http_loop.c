/* The batch event loop: curl_multi_socket_action driven by epoll, so each
 * wake-up touches only the transfers whose sockets are ready (curl_multi_perform
 * would poll every transfer's socket on every call). */
#include <errno.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include "http_xfer.h"

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int on_timer(CURLM *m, long timeout_ms, void *ud) {
  wxhw_loop *l = ud;
  (void)m;
  l->deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  return 0;
}

#ifdef __linux__
static int on_socket(CURL *e, curl_socket_t s, int what, void *ud, void *sockp) {
  wxhw_loop *l = ud;
  struct epoll_event ev;
  (void)e;
  if (what == CURL_POLL_REMOVE) {
    if (sockp) epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
    curl_multi_assign(l->multi, s, NULL);
    return 0;
  }
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
  ev.data.fd = s;
  if (sockp) { /* already registered (curl_multi_assign marks it) */
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) == 0) return 0;
    if (errno != ENOENT) return -1;
  }
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev) != 0 && errno != EEXIST) return -1;
  curl_multi_assign(l->multi, s, l);
  return 0;
}
#endif

int wxhw_loop_init(wxhw_loop *l, long max_connections) {
  l->deadline = -1;
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
  n = epoll_wait(l->epfd, ev, (int)(sizeof ev / sizeof ev[0]), wait);
  if (n < 0) return errno == EINTR ? CURLM_OK : CURLM_INTERNAL_ERROR;
  for (i = 0; i < n; i++) {
    int flags = ((ev[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                ((ev[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                ((ev[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
    CURLMcode rc = curl_multi_socket_action(l->multi, ev[i].data.fd, flags, &running);
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
