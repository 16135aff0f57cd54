/* The Turing-test web server: HTTP in, protocol calls, HTTP out.
 *
 * libmicrohttpd runs a small pool of threads (epoll where available); every
 * request is read whole (at most MAX_BODY bytes of body) before it is
 * routed. Only the URLs listed in turing.h exist; anything else is 404 and
 * no part of a URL is ever used as a file name. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "base/error.h"
#include "turing/page.h"
#include "turing/photos.h"
#include "turing/protocol.h"
#include "turing/turing.h"

/* Request bodies are a few short form fields; anything longer is refused
 * (413 when announced by Content-Length, dropped connection when chunked). */
#define MAX_BODY 1024
/* An idle connection is closed after this many seconds, so slow or stalled
 * clients cannot hold workers. */
#define CONNECTION_TIMEOUT_S 30
/* Connections open at once, over all workers. */
#define CONNECTION_LIMIT 1000
#define LISTEN_BACKLOG 256
#define COOKIE_NAME "cz_participant"
#define COOKIE_MAX_AGE_S (365 * 24 * 3600)

struct cz_turing_server {
    struct MHD_Daemon *daemon;
    cz_turing_photos *photos;
    cz_turing_protocol *proto;
    int port;
};

typedef struct {
    size_t len;
    char body[MAX_BODY];
} request;

void cz_turing_config_default(cz_turing_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bind_addr = "127.0.0.1";
    cfg->port = 8080;
    cfg->show_ms = 1000;
    cfg->n_practice = 10;
    cfg->n_test = 40;
    cfg->n_vigilance = 4;
    cfg->threads = 4;
}

static enum MHD_Result send_reply(struct MHD_Connection *c,
                                  const cz_turing_reply *r)
{
    struct MHD_Response *resp;
    if (r->image)
        resp = MHD_create_response_from_buffer(r->image->size, r->image->data,
                                               MHD_RESPMEM_PERSISTENT);
    else
        resp = MHD_create_response_from_buffer(
            r->body ? strlen(r->body) : 0, r->body ? r->body : (char *)"",
            MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->image ? "image/jpeg"
                                     : "application/json; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->cookie[0]) {
        char cookie[160];
        snprintf(cookie, sizeof cookie,
                 COOKIE_NAME "=%s; Path=/; Max-Age=%d; HttpOnly; "
                 "SameSite=Strict",
                 r->cookie, COOKIE_MAX_AGE_S);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    }
    enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status,
                                  const char *json, const char *allow)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(json), (void *)json, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_page(struct MHD_Connection *c)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(cz_turing_page), (void *)cz_turing_page, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/html; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(
        resp, "Content-Security-Policy",
        "default-src 'none'; img-src 'self'; connect-src 'self'; "
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* If url is prefix + token + suffix, copies the token into tok. */
static int match_token(const char *url, const char *prefix, const char *suffix,
                       char tok[CZ_TURING_TOKEN_LEN + 1])
{
    size_t np = strlen(prefix);
    if (strncmp(url, prefix, np) != 0 ||
        strlen(url) != np + CZ_TURING_TOKEN_LEN + strlen(suffix) ||
        strcmp(url + np + CZ_TURING_TOKEN_LEN, suffix) != 0)
        return 0;
    memcpy(tok, url + np, CZ_TURING_TOKEN_LEN);
    tok[CZ_TURING_TOKEN_LEN] = '\0';
    return cz_turing_is_token(tok);
}

static enum MHD_Result route(cz_turing_server *srv, struct MHD_Connection *c,
                             const char *url, const char *method,
                             const request *rq)
{
    const int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    const int post = strcmp(method, "POST") == 0;
    static const char not_allowed[] = "{\"error\":\"method not allowed\"}";
    static const char not_found[] = "{\"error\":\"not found\"}";
    cz_turing_reply r = {0};
    char tok[CZ_TURING_TOKEN_LEN + 1];

    if (strcmp(url, "/") == 0) {
        if (!get)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed,
                              "GET, HEAD");
        return send_page(c);
    }
    if (strcmp(url, "/api/session") == 0) {
        if (!post)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed,
                              "POST");
        const char *cookie =
            MHD_lookup_connection_value(c, MHD_COOKIE_KIND, COOKIE_NAME);
        cz_turing_start(srv->proto, cookie, rq->body, rq->len, &r);
    } else if (match_token(url, "/api/session/", "/trial", tok)) {
        if (!get)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed,
                              "GET, HEAD");
        cz_turing_trial(srv->proto, tok, &r);
    } else if (match_token(url, "/api/session/", "/answer", tok)) {
        if (!post)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed,
                              "POST");
        cz_turing_answer(srv->proto, tok, rq->body, rq->len, &r);
    } else if (match_token(url, "/img/", "/a", tok) ||
               match_token(url, "/img/", "/b", tok)) {
        if (!get)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed,
                              "GET, HEAD");
        cz_turing_image(srv->proto, tok, url[strlen(url) - 1], &r);
    } else {
        return send_error(c, MHD_HTTP_NOT_FOUND, not_found, NULL);
    }
    enum MHD_Result ret = send_reply(c, &r);
    cz_turing_reply_clear(&r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    cz_turing_server *srv = cls;
    request *rq = *req_cls;
    if (!rq) {
        /* Headers only, so far. Refuse a body announced too long before
         * reading it (MHD then closes the connection after the reply). */
        const char *len = MHD_lookup_connection_value(
            c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (len) {
            char *end;
            unsigned long long n = strtoull(len, &end, 10);
            if (*end || n > MAX_BODY)
                return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                                  "{\"error\":\"request body too large\"}",
                                  NULL);
        }
        rq = malloc(sizeof *rq);
        if (!rq)
            return MHD_NO;
        rq->len = 0;
        *req_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* Chunked bodies have no announced length: drop the connection as
         * soon as one grows past the limit. */
        if (*upload_data_size > MAX_BODY - rq->len)
            return MHD_NO;
        memcpy(rq->body + rq->len, upload_data, *upload_data_size);
        rq->len += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return route(srv, c, url, method, rq);
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    free(*req_cls);
    *req_cls = NULL;
}

cz_status cz_turing_server_start(const cz_turing_config *cfg,
                                 cz_turing_server **out)
{
    *out = NULL;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    const char *bind_addr = cfg->bind_addr ? cfg->bind_addr : "127.0.0.1";
    if (inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1)
        return cz_fail(CZ_ERR_INVALID, "bind address '%s' is not an IPv4 "
                       "address", bind_addr);
    if (cfg->port < 0 || cfg->port > 65535)
        return cz_fail(CZ_ERR_INVALID, "port %d: use 0 to 65535", cfg->port);
    if (cfg->threads < 1 || cfg->threads > 64)
        return cz_fail(CZ_ERR_INVALID, "%d threads: use 1 to 64", cfg->threads);
    if (!cfg->db_path)
        return cz_fail(CZ_ERR_INVALID, "no database file given");
    addr.sin_port = htons((uint16_t)cfg->port);

    cz_turing_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return cz_fail(CZ_ERR_NOMEM, "out of memory");
    cz_turing_config c = *cfg;
    if (c.seed == 0) {
        uint64_t s = 0;
        if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) {
            free(srv);
            return cz_fail(CZ_ERR_IO, "cannot draw a random seed");
        }
        c.seed = s ? s : 1;
    }
    cz_status status = cz_turing_photos_load(c.real_dir, c.methods, c.n_methods,
                                             c.seed, &srv->photos);
    if (status == CZ_OK)
        status = cz_turing_protocol_open(&c, srv->photos, &srv->proto);
    if (status != CZ_OK)
        goto fail;

    srv->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        handle, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c.threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG,
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!srv->daemon) {
        status = cz_fail(CZ_ERR_IO, "cannot listen on %s:%d (in use?)",
                         bind_addr, cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
    *out = srv;
    return CZ_OK;

fail:
    cz_turing_server_stop(srv);
    return status;
}

int cz_turing_server_port(const cz_turing_server *srv) { return srv->port; }

void cz_turing_server_stop(cz_turing_server *srv)
{
    if (!srv)
        return;
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    cz_turing_protocol_close(srv->proto);
    cz_turing_photos_free(srv->photos);
    free(srv);
}
