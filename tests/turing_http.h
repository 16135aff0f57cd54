/* A minimal HTTP/1.1 client for the Turing-test tests: plain sockets to
 * 127.0.0.1 only, keep-alive, responses framed by Content-Length (which is
 * all the server sends), and a raw mode that sends bytes as given. Every
 * socket has send and receive timeouts, so a stuck server fails a test
 * instead of hanging it. */
#ifndef CZ_TESTS_TURING_HTTP_H
#define CZ_TESTS_TURING_HTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define HTTP_TIMEOUT_S 20 /* per socket operation */
#define HTTP_MAX_RESPONSE (4 << 20)

typedef struct {
    int status;          /* 0: no response (connection dropped) */
    char cookie[80];     /* cz_participant value from Set-Cookie, or "" */
    char content_type[80];
    char *body;          /* NUL-terminated (binary bodies too) */
    size_t len;
    int closes;          /* the server said Connection: close */
} http_response;

typedef struct {
    int port;
    int fd; /* -1 when not connected */
} http_client;

static inline void http_response_free(http_response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static inline int http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {HTTP_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int http_send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Copies the value of header name (case-insensitive) from the header block
 * hdr (ending at the blank line) into out. */
static inline int http_header(const char *hdr, const char *name, char *out,
                              size_t cap)
{
    size_t n = strlen(name);
    for (const char *line = strstr(hdr, "\r\n"); line && line[2] != '\r';
         line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            h += n + 1;
            while (*h == ' ')
                h++;
            size_t len = strcspn(h, "\r");
            if (len >= cap)
                len = cap - 1;
            memcpy(out, h, len);
            out[len] = '\0';
            return 1;
        }
    }
    return 0;
}

/* Reads one response from fd into r. 0 on success; -1 if the connection
 * ended or timed out first (r->status stays 0). */
static inline int http_read_response(int fd, http_response *r)
{
    size_t cap = 8192, have = 0, hdr_end = 0, need = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -1;
    for (;;) {
        if (hdr_end && have >= need)
            break;
        if (have == cap) {
            if (cap >= HTTP_MAX_RESPONSE)
                goto fail;
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                goto fail;
            buf = nb;
        }
        ssize_t k = recv(fd, buf + have, cap - have, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            goto fail;
        have += (size_t)k;
        buf[have] = '\0';
        if (!hdr_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e)
                continue;
            hdr_end = (size_t)(e - buf) + 4;
            char v[80];
            size_t body = 0;
            if (http_header(buf, "Content-Length", v, sizeof v))
                body = strtoul(v, NULL, 10);
            need = hdr_end + body;
            if (need > HTTP_MAX_RESPONSE)
                goto fail;
        }
    }
    buf[have] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
        goto fail;
    char saved = buf[hdr_end - 2];
    buf[hdr_end - 2] = '\0';
    char v[160];
    r->cookie[0] = '\0';
    if (http_header(buf, "Set-Cookie", v, sizeof v) &&
        strncmp(v, "cz_participant=", 15) == 0) {
        size_t n = strcspn(v + 15, ";");
        if (n >= sizeof r->cookie)
            n = sizeof r->cookie - 1;
        memcpy(r->cookie, v + 15, n);
        r->cookie[n] = '\0';
    }
    r->content_type[0] = '\0';
    http_header(buf, "Content-Type", r->content_type, sizeof r->content_type);
    r->closes = http_header(buf, "Connection", v, sizeof v) &&
                strcasecmp(v, "close") == 0;
    buf[hdr_end - 2] = saved;
    r->len = need - hdr_end;
    r->body = malloc(r->len + 1);
    if (!r->body)
        goto fail;
    memcpy(r->body, buf + hdr_end, r->len);
    r->body[r->len] = '\0';
    free(buf);
    return 0;
fail:
    free(buf);
    r->status = 0;
    return -1;
}

/* Sends a request (already formatted) over the client's connection,
 * reconnecting once if the server had closed an idle keep-alive one. */
static inline int http_exchange(http_client *c, const char *req, size_t len,
                                http_response *r)
{
    memset(r, 0, sizeof *r);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = c->fd < 0;
        if (fresh && (c->fd = http_connect(c->port)) < 0)
            return -1;
        if (http_send_all(c->fd, req, len) == 0 &&
            http_read_response(c->fd, r) == 0) {
            if (r->closes) {
                close(c->fd);
                c->fd = -1;
            }
            return 0;
        }
        close(c->fd);
        c->fd = -1;
        if (fresh)
            return -1;
    }
    return -1;
}

/* method path with an optional participant cookie and form body. */
static inline int http_do(http_client *c, const char *method, const char *path,
                          const char *cookie, const char *body,
                          http_response *r)
{
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s"
                     "Content-Type: application/x-www-form-urlencoded\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, cookie && *cookie ? "Cookie: cz_participant=" : "",
                     cookie && *cookie ? cookie : "", cookie && *cookie ? "\r\n" : "",
                     body ? strlen(body) : 0, body ? body : "");
    if (n < 0 || (size_t)n >= sizeof req)
        return -1;
    return http_exchange(c, req, (size_t)n, r);
}

/* Sends raw bytes on a fresh connection and reads one response. */
static inline int http_raw(int port, const char *raw, size_t len,
                           http_response *r)
{
    http_client c = {port, -1};
    int rc = http_exchange(&c, raw, len, r);
    if (c.fd >= 0)
        close(c.fd);
    return rc;
}

static inline void http_close(http_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Flat-JSON field readers: the server's replies are one object of strings,
 * numbers and booleans. */
static inline const char *json_field(const char *body, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = body ? strstr(body, pat) : NULL;
    return p ? p + strlen(pat) : NULL;
}

static inline int json_str(const char *body, const char *key, char *out,
                           size_t cap)
{
    const char *p = json_field(body, key);
    if (!p || *p != '"')
        return 0;
    size_t n = strcspn(p + 1, "\"");
    if (n >= cap)
        return 0;
    memcpy(out, p + 1, n);
    out[n] = '\0';
    return 1;
}

static inline long json_int(const char *body, const char *key)
{
    const char *p = json_field(body, key);
    return p ? strtol(p, NULL, 10) : -999;
}

/* 1 true, 0 false, -1 absent. */
static inline int json_bool(const char *body, const char *key)
{
    const char *p = json_field(body, key);
    if (!p)
        return -1;
    return strncmp(p, "true", 4) == 0;
}

#endif
