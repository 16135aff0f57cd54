#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "io/half.h"

/* The file starts with the header length as a u64. */
#define ST_LEN_BYTES 8
/* The reference implementation's limit; a length beyond it is corruption, and
 * refusing it keeps a garbage length from driving a huge allocation. */
#define ST_MAX_HEADER 100000000u
/* Writers pad the header with spaces to this multiple so the data section
 * starts aligned for any dtype. */
#define ST_ALIGN 8
/* Bytes converted per write() call when writing tensor data, and read per
 * pread() call when reading it. */
#define ST_WRITE_CHUNK 65536
#define ST_READ_CHUNK (1u << 20)
/* Longest shape text, "[d0,d1,...]", with 20 digits and a sign per dim. */
#define ST_SHAPE_TEXT (2 + CZ_ST_MAX_DIMS * 22)

static const struct {
    const char *name;
    cz_dtype dtype;
    size_t size;
} dtypes[] = {
    {"F32", CZ_DT_F32, 4},
    {"F16", CZ_DT_F16, 2},
    {"BF16", CZ_DT_BF16, 2},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

/* Offsets and dimensions pass through jansson's integer type both ways. */
_Static_assert(sizeof(json_int_t) == sizeof(int64_t),
               "jansson built without 64-bit integers");

typedef struct {
    const char *name; /* owned by the parsed header */
    cz_dtype dtype;
    int ndim;
    int64_t shape[CZ_ST_MAX_DIMS];
    size_t begin, end; /* byte range within the data section */
} st_tensor;

/* The header is read at open; tensor data stays in the file, read by
 * cz_safetensors_read_f32 straight into the caller's memory, so a model is
 * never in memory twice. */
struct cz_safetensors {
    char *path;                /* for messages */
    int fd;                    /* open until close, -1 if none */
    uint64_t data_offset;      /* where the data section starts in the file */
    size_t data_size;
    json_t *header;
    json_t *metadata;   /* borrowed from header; NULL if the file has none */
    st_tensor *tensors; /* sorted by name for bsearch */
    int count;
};

static bool dtype_valid(cz_dtype dt) { return (unsigned)dt < N_DTYPES; }

static size_t dtype_size(cz_dtype dt) { return dtypes[dt].size; }

static const char *dtype_name(cz_dtype dt) { return dtypes[dt].name; }

static void format_shape(char *buf, const int64_t *shape, int ndim)
{
    size_t at = 0;
    buf[at++] = '[';
    for (int i = 0; i < ndim; i++)
        at += (size_t)snprintf(buf + at, ST_SHAPE_TEXT - at, "%s%" PRId64,
                               i ? "," : "", shape[i]);
    snprintf(buf + at, ST_SHAPE_TEXT - at, "]");
}

/* ---------------------------------------------------------------- reading */

/* Reads exactly size bytes at offset; "shrank" if the file ends first. */
static cz_status read_at(int fd, const char *path, void *buf, size_t size, uint64_t offset)
{
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, (char *)buf + got, size - got, (off_t)(offset + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return cz_fail(CZ_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        if (r == 0)
            return cz_fail(CZ_ERR_IO, "%s: file shrank while being read", path);
        got += (size_t)r;
    }
    return CZ_OK;
}

/* Opens st->path into st->fd and gives the file's size. */
static cz_status open_file(cz_safetensors *st, size_t *out_size)
{
    const char *path = st->path;
    st->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (st->fd < 0)
        return cz_fail(CZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(st->fd, &sb) != 0)
        return cz_fail(CZ_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return cz_fail(CZ_ERR_IO, "%s: not a regular file", path);
    if ((uintmax_t)sb.st_size >= SIZE_MAX)
        return cz_fail(CZ_ERR_TOO_LARGE, "%s: file too large to load", path);
    *out_size = (size_t)sb.st_size;
    return CZ_OK;
}

static uint64_t load_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = ST_LEN_BYTES - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* A JSON integer in [0, INT64_MAX], or -1 if v is anything else. */
static int64_t json_nonneg(const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return (int64_t)json_integer_value(v);
}

/* Reads and checks the length prefix, and parses the header after it into
 * st->header. */
static cz_status parse_header(cz_safetensors *st, size_t size)
{
    const char *path = st->path;
    if (size < ST_LEN_BYTES)
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: file is %zu bytes, too short for a safetensors "
                       "file (it starts with an 8-byte header length)",
                       path, size);
    unsigned char prefix[ST_LEN_BYTES];
    cz_status s = read_at(st->fd, path, prefix, ST_LEN_BYTES, 0);
    if (s != CZ_OK)
        return s;
    uint64_t n = load_u64le(prefix);
    if (n == 0)
        return cz_fail(CZ_ERR_FORMAT, "%s: header length is 0", path);
    if (n > ST_MAX_HEADER)
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: header length %" PRIu64 " exceeds the %u-byte "
                       "limit (not a safetensors file?)",
                       path, n, ST_MAX_HEADER);
    if (n > size - ST_LEN_BYTES)
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: header length %" PRIu64 " runs past the end of "
                       "the %zu-byte file (truncated?)",
                       path, n, size);

    char *text = malloc((size_t)n);
    if (!text)
        return cz_fail(CZ_ERR_NOMEM, "%s: no memory to read the header", path);
    if ((s = read_at(st->fd, path, text, (size_t)n, ST_LEN_BYTES)) != CZ_OK) {
        free(text);
        return s;
    }
    /* jansson would also accept an array or leading whitespace; the
     * reference implementation accepts neither. */
    if (text[0] != '{') {
        free(text);
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: header is not a JSON object (it must start "
                       "with '{')",
                       path);
    }
    json_error_t err;
    st->header = json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (!st->header) {
        switch (json_error_code(&err)) {
        case json_error_out_of_memory:
            return cz_fail(CZ_ERR_NOMEM, "%s: no memory to parse the header",
                           path);
        case json_error_duplicate_key:
            return cz_fail(CZ_ERR_FORMAT,
                           "%s: header has a duplicate name: %s (at byte %d)",
                           path, err.text, err.position);
        default:
            return cz_fail(CZ_ERR_FORMAT,
                           "%s: header is not valid JSON: %s (at byte %d)",
                           path, err.text, err.position);
        }
    }
    st->data_offset = ST_LEN_BYTES + n;
    st->data_size = size - ST_LEN_BYTES - (size_t)n;
    return CZ_OK;
}

/* safetensors requires a string -> string map. */
static cz_status parse_metadata(cz_safetensors *st)
{
    json_t *meta = json_object_get(st->header, "__metadata__");
    if (!meta)
        return CZ_OK;
    if (!json_is_object(meta))
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: __metadata__ is not a JSON object (it must map "
                       "strings to strings)",
                       st->path);
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v))
            return cz_fail(CZ_ERR_FORMAT,
                           "%s: __metadata__ value of '%s' is not a string "
                           "(metadata must map strings to strings)",
                           st->path, key);
    }
    st->metadata = meta;
    return CZ_OK;
}

/* Fills t from one header entry and checks it on its own; how the tensors
 * fit together is check_layout's job. */
static cz_status parse_entry(const cz_safetensors *st, const char *name,
                             json_t *v, st_tensor *t)
{
    const char *path = st->path;
    t->name = name;
    if (!json_is_object(v))
        return cz_fail(CZ_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON "
                       "object", path, name);
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") &&
            strcmp(key, "data_offsets"))
            return cz_fail(CZ_ERR_FORMAT,
                           "%s: tensor '%s': unexpected key '%s' (an entry "
                           "has exactly dtype, shape and data_offsets)",
                           path, name, key);
    }

    const json_t *dt = json_object_get(v, "dtype");
    if (!json_is_string(dt))
        return cz_fail(CZ_ERR_FORMAT, "%s: tensor '%s': dtype is missing or "
                       "not a string", path, name);
    size_t d = 0;
    while (d < N_DTYPES && strcmp(json_string_value(dt), dtypes[d].name))
        d++;
    if (d == N_DTYPES)
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: tensor '%s': unsupported dtype '%s' (colorize "
                       "reads F32, F16 and BF16)",
                       path, name, json_string_value(dt));
    t->dtype = dtypes[d].dtype;

    const json_t *shape = json_object_get(v, "shape");
    if (!json_is_array(shape))
        return cz_fail(CZ_ERR_FORMAT, "%s: tensor '%s': shape is missing or "
                       "not an array", path, name);
    if (json_array_size(shape) > CZ_ST_MAX_DIMS)
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: tensor '%s': shape has %zu dimensions, at most "
                       "%d are supported",
                       path, name, json_array_size(shape), CZ_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    /* Counted in uint64_t with every product checked, as the reference
     * implementation does: an overflow is an error even if a later
     * dimension is zero. */
    uint64_t elems = 1;
    for (int i = 0; i < t->ndim; i++) {
        int64_t dim = json_nonneg(json_array_get(shape, (size_t)i));
        if (dim < 0)
            return cz_fail(CZ_ERR_FORMAT,
                           "%s: tensor '%s': shape entry %d is not a "
                           "non-negative integer",
                           path, name, i);
        t->shape[i] = dim;
        if (__builtin_mul_overflow(elems, (uint64_t)dim, &elems))
            return cz_fail(CZ_ERR_TOO_LARGE, "%s: tensor '%s': element count "
                           "of its shape overflows", path, name);
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(elems, (uint64_t)dtype_size(t->dtype), &bytes))
        return cz_fail(CZ_ERR_TOO_LARGE, "%s: tensor '%s': byte count of its "
                       "shape overflows", path, name);

    const json_t *off = json_object_get(v, "data_offsets");
    if (!json_is_array(off) || json_array_size(off) != 2)
        return cz_fail(CZ_ERR_FORMAT, "%s: tensor '%s': data_offsets is "
                       "missing or not a [begin, end] pair", path, name);
    int64_t begin = json_nonneg(json_array_get(off, 0));
    int64_t end = json_nonneg(json_array_get(off, 1));
    if (begin < 0 || end < 0)
        return cz_fail(CZ_ERR_FORMAT, "%s: tensor '%s': data_offsets are not "
                       "non-negative integers", path, name);
    if (begin > end)
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                       "] end before they begin",
                       path, name, begin, end);
    if ((uint64_t)end > st->data_size)
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                       "] run past the end of the %zu-byte data section "
                       "(truncated file?)",
                       path, name, begin, end, st->data_size);
    if ((uint64_t)(end - begin) != bytes) {
        char text[ST_SHAPE_TEXT];
        format_shape(text, t->shape, t->ndim);
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                       "] hold %" PRId64 " bytes but dtype %s and shape %s "
                       "need %" PRIu64,
                       path, name, begin, end, end - begin,
                       dtype_name(t->dtype), text, bytes);
    }
    t->begin = (size_t)begin;
    t->end = (size_t)end;
    return CZ_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int by_offset(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a;
    const st_tensor *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    /* An empty tensor sorts before a non-empty one at the same offset, so
     * it does not read as an overlap. */
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* The tensors must tile the data section exactly, as the reference
 * implementation requires: an unindexed byte is a sign of a corrupt header,
 * and overlapping tensors would alias. */
static cz_status check_layout(const cz_safetensors *st)
{
    cz_status s = CZ_OK;
    const st_tensor **order = malloc(((size_t)st->count + 1) * sizeof *order);
    if (!order)
        return cz_fail(CZ_ERR_NOMEM, "%s: no memory to check the layout",
                       st->path);
    for (int i = 0; i < st->count; i++)
        order[i] = &st->tensors[i];
    qsort(order, (size_t)st->count, sizeof *order, by_offset);

    size_t at = 0;
    const st_tensor *prev = NULL;
    for (int i = 0; i < st->count; i++) {
        const st_tensor *t = order[i];
        if (t->begin < at) {
            s = cz_fail(CZ_ERR_FORMAT,
                        "%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) "
                        "overlap in the data section",
                        st->path, prev->name, prev->begin, prev->end, t->name,
                        t->begin, t->end);
            goto done;
        }
        if (t->begin > at) {
            s = cz_fail(CZ_ERR_FORMAT,
                        "%s: gap in the data section: bytes [%zu, %zu) before "
                        "tensor '%s' belong to no tensor",
                        st->path, at, t->begin, t->name);
            goto done;
        }
        at = t->end;
        prev = t;
    }
    if (at != st->data_size)
        s = cz_fail(CZ_ERR_FORMAT,
                    "%s: gap in the data section: its last %zu bytes belong "
                    "to no tensor",
                    st->path, st->data_size - at);
done:
    free(order);
    return s;
}

static cz_status parse_tensors(cz_safetensors *st)
{
    size_t n = json_object_size(st->header) - (st->metadata ? 1 : 0);
    if (n > INT_MAX)
        return cz_fail(CZ_ERR_TOO_LARGE, "%s: too many tensors (%zu)",
                       st->path, n);
    st->tensors = calloc(n + 1, sizeof *st->tensors);
    if (!st->tensors)
        return cz_fail(CZ_ERR_NOMEM, "%s: no memory for %zu tensors",
                       st->path, n);
    const char *key;
    json_t *v;
    json_object_foreach(st->header, key, v) {
        if (!strcmp(key, "__metadata__"))
            continue;
        cz_status s = parse_entry(st, key, v, &st->tensors[st->count]);
        if (s != CZ_OK)
            return s;
        st->count++;
    }
    qsort(st->tensors, (size_t)st->count, sizeof *st->tensors, by_name);
    return check_layout(st);
}

cz_status cz_safetensors_open(const char *path, cz_safetensors **out)
{
    cz_status s = CZ_OK;
    cz_safetensors *st = NULL;
    size_t size = 0;
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_safetensors_open: out is NULL");
    *out = NULL;
    if (!path)
        return cz_fail(CZ_ERR_INVALID, "cz_safetensors_open: path is NULL");

    st = calloc(1, sizeof *st);
    if (st) {
        st->fd = -1;
        st->path = strdup(path);
    }
    if (!st || !st->path) {
        s = cz_fail(CZ_ERR_NOMEM, "%s: no memory to open", path);
        goto done;
    }
    if ((s = open_file(st, &size)) != CZ_OK ||
        (s = parse_header(st, size)) != CZ_OK ||
        (s = parse_metadata(st)) != CZ_OK ||
        (s = parse_tensors(st)) != CZ_OK)
        goto done;
    *out = st;
    st = NULL;
done:
    cz_safetensors_close(st);
    return s;
}

void cz_safetensors_close(cz_safetensors *st)
{
    if (!st)
        return;
    free(st->tensors);
    json_decref(st->header);
    if (st->fd >= 0)
        close(st->fd);
    free(st->path);
    free(st);
}

const char *cz_safetensors_metadata(const cz_safetensors *st, const char *key)
{
    if (!st || !st->metadata || !key)
        return NULL;
    return json_string_value(json_object_get(st->metadata, key));
}

int cz_safetensors_count(const cz_safetensors *st) { return st ? st->count : 0; }

const char *cz_safetensors_name(const cz_safetensors *st, int i)
{
    if (!st || i < 0 || i >= st->count)
        return NULL;
    return st->tensors[i].name;
}

static const st_tensor *find(const cz_safetensors *st, const char *name)
{
    st_tensor key = {.name = name};
    return bsearch(&key, st->tensors, (size_t)st->count, sizeof key, by_name);
}

cz_status cz_safetensors_info(const cz_safetensors *st, const char *name,
                              cz_dtype *dtype, int *ndim, int64_t *shape)
{
    if (!st || !name)
        return cz_fail(CZ_ERR_INVALID, "cz_safetensors_info: NULL argument");
    const st_tensor *t = find(st, name);
    if (!t)
        return cz_fail(CZ_ERR_FORMAT, "%s: tensor '%s' is missing", st->path,
                       name);
    if (dtype)
        *dtype = t->dtype;
    if (ndim)
        *ndim = t->ndim;
    if (shape)
        memcpy(shape, t->shape, (size_t)t->ndim * sizeof *shape);
    return CZ_OK;
}

cz_status cz_safetensors_read_f32(const cz_safetensors *st, const char *name,
                                  const int64_t *expect_shape, int expect_ndim,
                                  float *dst)
{
    if (!st || !name || expect_ndim < 0 || expect_ndim > CZ_ST_MAX_DIMS ||
        (expect_ndim > 0 && !expect_shape))
        return cz_fail(CZ_ERR_INVALID, "cz_safetensors_read_f32: bad argument");
    const st_tensor *t = find(st, name);
    if (!t)
        return cz_fail(CZ_ERR_FORMAT, "%s: tensor '%s' is missing", st->path,
                       name);
    bool same = t->ndim == expect_ndim;
    for (int i = 0; same && i < t->ndim; i++)
        same = t->shape[i] == expect_shape[i];
    if (!same) {
        char have[ST_SHAPE_TEXT], want[ST_SHAPE_TEXT];
        format_shape(have, t->shape, t->ndim);
        format_shape(want, expect_shape, expect_ndim);
        return cz_fail(CZ_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s",
                       st->path, name, have, want);
    }
    size_t n = (t->end - t->begin) / dtype_size(t->dtype);
    if (n > 0 && !dst)
        return cz_fail(CZ_ERR_INVALID, "cz_safetensors_read_f32: dst is NULL");

    /* Read a chunk at a time and converted into dst. Bytes are assembled
     * explicitly: the data is little-endian whatever the host, and need not
     * be aligned (the header length is arbitrary). */
    size_t item = dtype_size(t->dtype), per_chunk = ST_READ_CHUNK / item;
    unsigned char *chunk = n ? malloc(ST_READ_CHUNK) : NULL;
    if (n && !chunk)
        return cz_fail(CZ_ERR_NOMEM, "%s: no memory to read tensor '%s'", st->path, name);
    cz_status s = CZ_OK;
    for (size_t at = 0; at < n; at += per_chunk) {
        size_t count = n - at < per_chunk ? n - at : per_chunk;
        s = read_at(st->fd, st->path, chunk, count * item, st->data_offset + t->begin + at * item);
        if (s != CZ_OK)
            break;
        const unsigned char *p = chunk;
        float *out = dst + at;
        switch (t->dtype) {
        case CZ_DT_F32:
            for (size_t i = 0; i < count; i++, p += 4) {
                uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
                memcpy(&out[i], &u, sizeof u);
            }
            break;
        case CZ_DT_F16:
            for (size_t i = 0; i < count; i++, p += 2)
                out[i] = cz_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
            break;
        case CZ_DT_BF16:
            for (size_t i = 0; i < count; i++, p += 2)
                out[i] = cz_bf16_to_f32((uint16_t)(p[0] | p[1] << 8));
            break;
        }
    }
    free(chunk);
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

cz_status cz_safetensors_check_names(const cz_safetensors *st,
                                     const char *const *expected, int n)
{
    cz_status s = CZ_OK;
    const char **sorted = NULL;
    if (!st || n < 0 || (n > 0 && !expected))
        return cz_fail(CZ_ERR_INVALID, "cz_safetensors_check_names: bad "
                       "argument");
    for (int i = 0; i < n; i++) {
        if (!expected[i])
            return cz_fail(CZ_ERR_INVALID, "cz_safetensors_check_names: "
                           "expected[%d] is NULL", i);
        if (!find(st, expected[i]))
            return cz_fail(CZ_ERR_FORMAT, "%s: tensor '%s' is missing",
                           st->path, expected[i]);
    }
    sorted = malloc(((size_t)n + 1) * sizeof *sorted);
    if (!sorted)
        return cz_fail(CZ_ERR_NOMEM, "%s: no memory to check names", st->path);
    memcpy(sorted, expected, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    for (int i = 0; i < st->count; i++) {
        const char *name = st->tensors[i].name;
        if (!bsearch(&name, sorted, (size_t)n, sizeof *sorted, cmp_str)) {
            s = cz_fail(CZ_ERR_FORMAT, "%s: unexpected tensor '%s' (not part "
                        "of the architecture)", st->path, name);
            goto done;
        }
    }
done:
    free(sorted);
    return s;
}

/* ---------------------------------------------------------------- writing */

/* Builds the header object, checking every entry and laying the tensors
 * out back to back in the given order. */
static cz_status build_header(const char *path, const char *const *meta_kv,
                              const cz_st_entry *entries, int n, json_t **out)
{
    cz_status s = CZ_OK;
    json_t *root = json_object();
    if (!root)
        return cz_fail(CZ_ERR_NOMEM, "%s: no memory for the header", path);

    if (meta_kv && meta_kv[0]) {
        json_t *meta = json_object();
        if (!meta || json_object_set_new(root, "__metadata__", meta)) {
            s = cz_fail(CZ_ERR_NOMEM, "%s: no memory for the header", path);
            goto done;
        }
        for (size_t i = 0; meta_kv[i]; i += 2) {
            const char *key = meta_kv[i], *value = meta_kv[i + 1];
            if (!value) {
                s = cz_fail(CZ_ERR_INVALID, "%s: metadata key '%s' has no "
                            "value", path, key);
                goto done;
            }
            if (json_object_get(meta, key)) {
                s = cz_fail(CZ_ERR_INVALID, "%s: metadata key '%s' given "
                            "twice", path, key);
                goto done;
            }
            /* jansson refuses strings that are not UTF-8 (or on no memory,
             * which these short strings make the unlikely reading). */
            if (json_object_set_new(meta, key, json_string(value))) {
                s = cz_fail(CZ_ERR_INVALID, "%s: metadata '%s' is not valid "
                            "UTF-8", path, key);
                goto done;
            }
        }
    }

    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        const cz_st_entry *e = &entries[i];
        const char *name = e->name;
        if (!name || !strcmp(name, "__metadata__") ||
            json_object_get(root, name)) {
            s = cz_fail(CZ_ERR_INVALID, "%s: tensor %d: name '%s' is missing, "
                        "reserved or given twice", path, i,
                        name ? name : "(null)");
            goto done;
        }
        if (!dtype_valid(e->dtype) || e->ndim < 0 ||
            e->ndim > CZ_ST_MAX_DIMS) {
            s = cz_fail(CZ_ERR_INVALID, "%s: tensor '%s': bad dtype or ndim",
                        path, name);
            goto done;
        }
        uint64_t elems = 1, bytes;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0) {
                s = cz_fail(CZ_ERR_INVALID, "%s: tensor '%s': negative "
                            "dimension", path, name);
                goto done;
            }
            if (__builtin_mul_overflow(elems, (uint64_t)e->shape[d], &elems)) {
                s = cz_fail(CZ_ERR_TOO_LARGE, "%s: tensor '%s': element count "
                            "overflows", path, name);
                goto done;
            }
        }
        if (__builtin_mul_overflow(elems, (uint64_t)dtype_size(e->dtype),
                                   &bytes) ||
            bytes > (uint64_t)INT64_MAX - at || elems > SIZE_MAX) {
            s = cz_fail(CZ_ERR_TOO_LARGE, "%s: tensor '%s': too large", path,
                        name);
            goto done;
        }
        if (elems > 0 && !e->data) {
            s = cz_fail(CZ_ERR_INVALID, "%s: tensor '%s': data is NULL", path,
                        name);
            goto done;
        }

        /* json_*_set_new and append_new take over their value even when
         * they fail, NULL container included, so one check at the end
         * leaks nothing. */
        json_t *ent = json_object(), *shape = json_array(), *off = json_array();
        int bad = 0;
        for (int d = 0; d < e->ndim; d++)
            bad |= json_array_append_new(shape, json_integer(e->shape[d]));
        bad |= json_array_append_new(off, json_integer((json_int_t)at));
        bad |= json_array_append_new(off, json_integer((json_int_t)(at + bytes)));
        bad |= json_object_set_new(ent, "dtype",
                                   json_string(dtype_name(e->dtype)));
        bad |= json_object_set_new(ent, "shape", shape);
        bad |= json_object_set_new(ent, "data_offsets", off);
        if (bad) {
            json_decref(ent);
            s = cz_fail(CZ_ERR_NOMEM, "%s: no memory for the header", path);
            goto done;
        }
        /* With the entry built, the likely failure left is a name that is
         * not UTF-8, which jansson refuses as a key. */
        if (json_object_set_new(root, name, ent)) {
            s = cz_fail(CZ_ERR_INVALID, "%s: tensor %d: name is not valid "
                        "UTF-8", path, i);
            goto done;
        }
        at += bytes;
    }
    *out = root;
    root = NULL;
done:
    json_decref(root);
    return s;
}

static cz_status write_all(const char *path, int fd, const void *buf,
                           size_t len)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return cz_fail(CZ_ERR_IO, "%s: cannot write: %s", path,
                           strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return CZ_OK;
}

/* Narrows and serialises one tensor's data, little-endian, a chunk at a
 * time so memory use does not grow with the tensor. */
static cz_status write_tensor(const char *path, int fd, const cz_st_entry *e)
{
    unsigned char buf[ST_WRITE_CHUNK];
    size_t itemsize = dtype_size(e->dtype);
    size_t n = 1;
    for (int d = 0; d < e->ndim; d++)
        n *= (size_t)e->shape[d]; /* checked in build_header */
    size_t per_chunk = sizeof buf / itemsize;
    for (size_t i = 0; i < n; i += per_chunk) {
        size_t m = n - i < per_chunk ? n - i : per_chunk;
        const float *src = e->data + i;
        unsigned char *p = buf;
        for (size_t j = 0; j < m; j++) {
            uint32_t u;
            switch (e->dtype) {
            case CZ_DT_F32:
                memcpy(&u, &src[j], sizeof u);
                *p++ = (unsigned char)u;
                *p++ = (unsigned char)(u >> 8);
                *p++ = (unsigned char)(u >> 16);
                *p++ = (unsigned char)(u >> 24);
                break;
            case CZ_DT_F16:
            case CZ_DT_BF16:
                u = e->dtype == CZ_DT_F16 ? cz_f32_to_f16(src[j])
                                          : cz_f32_to_bf16(src[j]);
                *p++ = (unsigned char)u;
                *p++ = (unsigned char)(u >> 8);
                break;
            }
        }
        cz_status s = write_all(path, fd, buf, m * itemsize);
        if (s != CZ_OK)
            return s;
    }
    return CZ_OK;
}

/* Makes the rename itself durable. Best effort: the new file is already in
 * place and complete, and some file systems refuse fsync on a directory. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : strdup(".");
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

cz_status cz_safetensors_write(const char *path, const char *const *meta_kv,
                               const cz_st_entry *entries, int n)
{
    cz_status s = CZ_OK;
    json_t *root = NULL;
    char *text = NULL, *tmp = NULL;
    unsigned char *head = NULL;
    int fd = -1;

    if (!path || n < 0 || (n > 0 && !entries))
        return cz_fail(CZ_ERR_INVALID, "cz_safetensors_write: bad argument");
    if ((s = build_header(path, meta_kv, entries, n, &root)) != CZ_OK)
        goto done;
    text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        s = cz_fail(CZ_ERR_NOMEM, "%s: no memory to format the header", path);
        goto done;
    }
    size_t len = strlen(text);
    size_t padded = (len + ST_ALIGN - 1) / ST_ALIGN * ST_ALIGN;
    if (padded > ST_MAX_HEADER) {
        s = cz_fail(CZ_ERR_TOO_LARGE, "%s: header of %zu bytes exceeds the "
                    "%u-byte limit", path, padded, ST_MAX_HEADER);
        goto done;
    }
    size_t tmp_size = strlen(path) + sizeof ".tmp-XXXXXX";
    head = malloc(ST_LEN_BYTES + padded);
    tmp = malloc(tmp_size);
    if (!head || !tmp) {
        s = cz_fail(CZ_ERR_NOMEM, "%s: no memory to write", path);
        goto done;
    }
    for (int i = 0; i < ST_LEN_BYTES; i++)
        head[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(head + ST_LEN_BYTES, text, len);
    memset(head + ST_LEN_BYTES + len, ' ', padded - len);

    /* The temporary file sits beside the target so the rename cannot cross
     * file systems. */
    snprintf(tmp, tmp_size, "%s.tmp-XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        s = cz_fail(CZ_ERR_IO, "%s: cannot create a temporary file beside it: "
                    "%s", path, strerror(errno));
        free(tmp);
        tmp = NULL; /* nothing to remove */
        goto done;
    }
    /* mkstemp makes the file private (0600); a model is meant to be shared,
     * so give it what the usual umask of 022 would. */
    if (fchmod(fd, 0644) != 0) {
        s = cz_fail(CZ_ERR_IO, "%s: cannot set the mode: %s", path,
                    strerror(errno));
        goto done;
    }
    if ((s = write_all(path, fd, head, ST_LEN_BYTES + padded)) != CZ_OK)
        goto done;
    for (int i = 0; i < n; i++)
        if ((s = write_tensor(path, fd, &entries[i])) != CZ_OK)
            goto done;
    if (fsync(fd) != 0) {
        s = cz_fail(CZ_ERR_IO, "%s: cannot sync: %s", path, strerror(errno));
        goto done;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        s = cz_fail(CZ_ERR_IO, "%s: cannot close: %s", path, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        s = cz_fail(CZ_ERR_IO, "%s: cannot move the new file into place: %s",
                    path, strerror(errno));
        goto done;
    }
    free(tmp);
    tmp = NULL; /* renamed: no longer ours to remove */
    sync_parent_dir(path);
done:
    if (fd >= 0)
        close(fd);
    if (tmp)
        unlink(tmp);
    free(tmp);
    free(head);
    free(text);
    json_decref(root);
    return s;
}
