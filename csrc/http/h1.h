/* An incremental HTTP/1.x response parser (RFC 9112), pure C: status line,
 * headers, 1xx interim responses skipped, bodies by Content-Length, chunked
 * (extensions and trailers ignored) or until close; no body for HEAD, 204,
 * 304. Input may arrive split anywhere. Ambiguous framing (conflicting
 * Content-Length values, Transfer-Encoding with Content-Length, a
 * Transfer-Encoding on HTTP/1.0 or other than "chunked") is an error. */
#ifndef WXHW_HTTP1_H
#define WXHW_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define WXHW_H1_MAX_HEAD (64 * 1024) /* bytes of status line + headers (+ trailers) */

enum { WXHW_H1_MORE = 0, WXHW_H1_DONE = 1, WXHW_H1_ERROR = -1, WXHW_H1_ABORT = -2 };
enum { WXHW_H1_BODY_NONE, WXHW_H1_BODY_LENGTH, WXHW_H1_BODY_CHUNKED, WXHW_H1_BODY_CLOSE };

typedef struct {
  /* set by the caller before feeding (wxhw_h1_init keeps them) */
  int head;     /* the request was HEAD: no body whatever the headers say */
  void *ud;
  /* the final response's headers, one call each; nonzero aborts */
  int (*on_header)(void *ud, const char *name, size_t nlen, const char *value, size_t vlen);
  /* headers complete (status, body_kind, content_length known); nonzero aborts */
  int (*on_head_done)(void *ud);
  /* body bytes, already de-chunked; nonzero aborts */
  int (*on_body)(void *ud, const char *p, size_t n);

  /* results */
  int status;         /* of the final response */
  int minor;          /* HTTP/1.<minor> */
  int keep_alive;     /* the connection may carry another request afterwards */
  int body_kind;
  uint64_t content_length; /* when body_kind == LENGTH */
  uint64_t body_bytes;     /* delivered so far */
  uint64_t received;       /* bytes fed so far */
  const char *error;       /* why WXHW_H1_ERROR */

  /* internal */
  int state;
  int has_cl, has_te, te_chunked, conn_close, conn_keep;
  uint64_t remaining;
  size_t head_bytes;
  char *line;
  size_t llen, lcap;
} wxhw_h1;

/* Prepares p for a new response; keeps the caller's fields and the line buffer. */
void wxhw_h1_init(wxhw_h1 *p);
void wxhw_h1_free(wxhw_h1 *p);

/* Feeds n bytes. Returns MORE (all consumed, response not complete), DONE
 * (*used = bytes that belonged to the response; any rest did not), ERROR
 * (p->error says why) or ABORT (a callback refused). */
int wxhw_h1_feed(wxhw_h1 *p, const char *data, size_t n, size_t *used);

/* The peer closed the connection. Returns DONE for a close-delimited body,
 * else ERROR (p->error; p->received == 0 means nothing came at all). */
int wxhw_h1_eof(wxhw_h1 *p);

#endif
