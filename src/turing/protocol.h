/* The Turing-test protocol behind the HTTP endpoints: participants, sessions,
 * trials and answers in SQLite. server.c parses HTTP and calls one function
 * per endpoint; each takes the protocol's lock for its whole duration, so
 * requests are serialised against the database (they are short: a few
 * indexed lookups and at most one transaction). */
#ifndef CZ_TURING_PROTOCOL_H
#define CZ_TURING_PROTOCOL_H

#include <stddef.h>

#include <sqlite3.h>

#include "turing/photos.h"
#include "turing/turing.h"

#define CZ_TURING_TOKEN_LEN 32 /* 128 random bits as lowercase hex */

typedef struct cz_turing_protocol cz_turing_protocol;

/* What to send back. A JSON reply has body (malloc'd, freed with
 * cz_turing_reply_clear); an image reply has image (owned by the photos). */
typedef struct {
    unsigned status;                  /* HTTP status code */
    char *body;                       /* JSON, or NULL */
    const cz_turing_blob *image;      /* JPEG, or NULL */
    char cookie[CZ_TURING_TOKEN_LEN + 1]; /* participant cookie to set, or "" */
} cz_turing_reply;

void cz_turing_reply_clear(cz_turing_reply *r);

/* Opens or creates the database and takes the photos (not owned). */
cz_status cz_turing_protocol_open(const cz_turing_config *cfg,
                                  const cz_turing_photos *photos,
                                  cz_turing_protocol **out);

void cz_turing_protocol_close(cz_turing_protocol *p);

/* POST /api/session. cookie: the participant cookie sent, or NULL; body:
 * the form body (code=XYZ, optional). */
void cz_turing_start(cz_turing_protocol *p, const char *cookie,
                     const char *body, size_t len, cz_turing_reply *r);

/* GET /api/session/<sid>/trial. */
void cz_turing_trial(cz_turing_protocol *p, const char *sid,
                     cz_turing_reply *r);

/* POST /api/session/<sid>/answer, body trial=<index>&fake=<a|b>. */
void cz_turing_answer(cz_turing_protocol *p, const char *sid,
                      const char *body, size_t len, cz_turing_reply *r);

/* GET /img/<token>/<side>, side 'a' or 'b'. */
void cz_turing_image(cz_turing_protocol *p, const char *token, char side,
                     cz_turing_reply *r);

/* True if s is exactly CZ_TURING_TOKEN_LEN lowercase hex digits. */
int cz_turing_is_token(const char *s);

/* Opens the database and makes sure the schema is there (also used by the
 * report, read-only). */
cz_status cz_turing_db_open(const char *path, int readonly, sqlite3 **db);

#endif
