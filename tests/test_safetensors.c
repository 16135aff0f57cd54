/* Model files: the fp16/bf16 conversions against independent references,
 * write/read round trips, atomic writes, a corpus of malformed files that
 * must each be rejected with a message naming the file and the problem, and
 * a fixture written independently by numpy and PyTorch. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "io/half.h"
#include "io/safetensors.h"

#define FIXTURE "tests/fixtures/safetensors_reference.safetensors"

static char dir[] = "/tmp/cz_test_safetensors.XXXXXX";

/* Path of a file in the test's temporary directory (one static buffer per
 * slot, so a test can hold a few at once). */
static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", dir, name);
    return buf[slot];
}

static uint64_t rng_state = 0x5eed;
static uint64_t next_u64(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Equal bit patterns, or both NaN (payloads are not compared). */
static int same(float a, float b)
{
    return (isnan(a) && isnan(b)) || bits(a) == bits(b);
}

/* Random floats: a mix of arbitrary bit patterns, values in the f16 range
 * and a few specials, so every conversion path is exercised. */
static void fill_random(float *x, long n)
{
    static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN,
                                    65504.0f, 65520.0f, 1e-45f, 3.4e38f};
    for (long i = 0; i < n; i++) {
        uint64_t r = next_u64();
        switch (r % 4) {
        case 0: x[i] = from_bits((uint32_t)(r >> 32)); break;
        case 1: x[i] = ldexpf((float)(int32_t)(r >> 32) / 2147483648.0f,
                              (int)(r >> 8 & 63) - 40); break;
        case 2: x[i] = (float)(int32_t)(r >> 32) / 65536.0f; break;
        default: x[i] = special[(r >> 32) % (sizeof special / sizeof *special)];
        }
    }
}

/* ------------------------------------------------ conversions, exhaustive */

/* Value of a non-negative f16 bit pattern, computed from the definition;
 * 0x7c00 reads as 2^16, the next value if the exponent were unbounded,
 * which is where rounding overflows to infinity. */
static double f16_value(unsigned h)
{
    unsigned e = h >> 10, m = h & 0x3ff;
    return e ? ldexp(1.0 + m / 1024.0, (int)e - 15) : ldexp(m, -24);
}

/* Same for bf16; 0x7f80 reads as 2^128. */
static double bf16_value(unsigned h)
{
    unsigned e = h >> 7, m = h & 0x7f;
    return e ? ldexp(1.0 + m / 128.0, (int)e - 127) : ldexp(m, -133);
}

/* Nearest of patterns lo and lo + 1 to a, ties to the even pattern. */
static unsigned nearest(double a, unsigned lo, double vlo, double vhi)
{
    double dlo = a - vlo, dhi = vhi - a;
    if (dlo < dhi || (dlo == dhi && !(lo & 1)))
        return lo;
    return lo + 1;
}

/* Round to nearest even by search over the ordered positive patterns. */
static uint16_t ref_f32_to_f16(float x)
{
    double a = fabs((double)x);
    unsigned sign = signbit(x) ? 0x8000 : 0;
    if (a >= f16_value(0x7c00))
        return (uint16_t)(sign | 0x7c00);
    unsigned lo = 0, hi = 0x7c00; /* f16_value(lo) <= a < f16_value(hi) */
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (f16_value(mid) <= a)
            lo = mid;
        else
            hi = mid;
    }
    return (uint16_t)(sign | nearest(a, lo, f16_value(lo), f16_value(lo + 1)));
}

static uint16_t ref_f32_to_bf16(float x)
{
    double a = fabs((double)x);
    unsigned sign = signbit(x) ? 0x8000 : 0;
    if (isinf(x))
        return (uint16_t)(sign | 0x7f80);
    unsigned lo = (bits(x) & 0x7fffffff) >> 16; /* truncation rounds down */
    return (uint16_t)(sign | nearest(a, lo, bf16_value(lo), bf16_value(lo + 1)));
}

static void check_f32_to_half(float x)
{
    if (isnan(x)) {
        uint16_t h = cz_f32_to_f16(x), b = cz_f32_to_bf16(x);
        CHECK((h & 0x7c00) == 0x7c00 && (h & 0x3ff) && (h & 0x200) &&
              (h >> 15) == (bits(x) >> 31),
              "f16 of NaN %08x is %04x, not a quiet NaN", bits(x), h);
        CHECK((b & 0x7f80) == 0x7f80 && (b & 0x7f) && (b & 0x40) &&
              (b >> 15) == (bits(x) >> 31),
              "bf16 of NaN %08x is %04x, not a quiet NaN", bits(x), b);
        return;
    }
    uint16_t h = cz_f32_to_f16(x), rh = ref_f32_to_f16(x);
    CHECK(h == rh, "f16 of %a (%08x): %04x, reference %04x", (double)x,
          bits(x), h, rh);
    uint16_t b = cz_f32_to_bf16(x), rb = ref_f32_to_bf16(x);
    CHECK(b == rb, "bf16 of %a (%08x): %04x, reference %04x", (double)x,
          bits(x), b, rb);
#ifdef __FLT16_MAX__
    /* A second reference where the compiler has the type. */
    _Float16 c = (_Float16)x;
    uint16_t ch;
    memcpy(&ch, &c, sizeof ch);
    CHECK(h == ch, "f16 of %a: %04x, _Float16 gives %04x", (double)x, h, ch);
#endif
}

static void test_conversions(void)
{
    int before = check_failed;
    for (unsigned h = 0; h < 0x10000; h++) {
        unsigned e = (h >> 10) & 0x1f, m = h & 0x3ff;
        float f = cz_f16_to_f32((uint16_t)h);
        if (e == 0x1f && m) {
            CHECK(isnan(f) && !!signbit(f) == !!(h & 0x8000),
                  "f16 %04x widens to %a", h, (double)f);
            /* A quiet NaN keeps its exact pattern through a round trip. */
            if (m & 0x200)
                CHECK(cz_f32_to_f16(f) == h, "f16 NaN %04x came back %04x", h,
                      cz_f32_to_f16(f));
        } else {
            double v = e == 0x1f ? INFINITY : f16_value(h & 0x7fff);
            float want = (float)((h & 0x8000) ? -v : v);
            CHECK(bits(f) == bits(want), "f16 %04x widens to %a, want %a", h,
                  (double)f, (double)want);
            CHECK(cz_f32_to_f16(f) == h, "f16 %04x came back %04x", h,
                  cz_f32_to_f16(f));
        }
        float b = cz_bf16_to_f32((uint16_t)h);
        CHECK(bits(b) == h << 16, "bf16 %04x widens to %08x", h, bits(b));
        if (!isnan(b) || (h & 0x40))
            CHECK(cz_f32_to_bf16(b) == h, "bf16 %04x came back %04x", h,
                  cz_f32_to_bf16(b));
        else
            CHECK(isnan(cz_bf16_to_f32(cz_f32_to_bf16(b))),
                  "signalling bf16 NaN %04x lost its NaN-ness", h);

        /* Narrowing at and around every tie between neighbouring f16
         * values and every bf16 pattern's midpoint. */
        if (h < 0x7c00) {
            float mid = (float)((f16_value(h) + f16_value(h + 1)) / 2);
            check_f32_to_half(mid);
            check_f32_to_half(-mid);
            check_f32_to_half(nextafterf(mid, 0));
            check_f32_to_half(nextafterf(mid, INFINITY));
        }
        float bmid = from_bits((uint32_t)h << 16 | 0x8000);
        check_f32_to_half(bmid);
        check_f32_to_half(nextafterf(bmid, 0));
        check_f32_to_half(nextafterf(bmid, INFINITY));
    }
    static float x[1 << 16];
    for (int round = 0; round < 16; round++) {
        fill_random(x, 1 << 16);
        for (int i = 0; i < 1 << 16; i++)
            check_f32_to_half(x[i]);
    }
    printf("conversions: %s\n", check_failed == before ? "ok" : "FAILED");
}

/* ---------------------------------------------------------- round trips */

static float expect_after(cz_dtype dt, float x)
{
    switch (dt) {
    case CZ_DT_F16: return cz_f16_to_f32(cz_f32_to_f16(x));
    case CZ_DT_BF16: return cz_bf16_to_f32(cz_f32_to_bf16(x));
    default: return x;
    }
}

static long numel(const cz_st_entry *e)
{
    long n = 1;
    for (int d = 0; d < e->ndim; d++)
        n *= (long)e->shape[d];
    return n;
}

static int count_entries(const char *path)
{
    int n = 0;
    DIR *d = opendir(path);
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void test_round_trip(void)
{
    enum { N_BIG = 70000 }; /* larger than the writer's conversion chunk */
    static float a[3 * 4], b[5 * 7 * 2], c[N_BIG], big[N_BIG], scalar[1];
    fill_random(a, 12);
    fill_random(b, 70);
    fill_random(c, N_BIG);
    fill_random(big, N_BIG);
    scalar[0] = -2.5f;
    const cz_st_entry entries[] = {
        {"enc.a", CZ_DT_F32, 2, {3, 4}, a},
        {"dec.b", CZ_DT_F16, 3, {5, 7, 2}, b},
        {"c", CZ_DT_BF16, 1, {N_BIG}, c},
        {"empty", CZ_DT_F16, 2, {0, 3}, NULL},
        {"scalar", CZ_DT_F32, 0, {0}, scalar},
        {"big", CZ_DT_F32, 1, {N_BIG}, big},
    };
    const int n = sizeof entries / sizeof *entries;
    const char *meta[] = {"arch", "pix2pix-unet", "ngf", "64",
                          "note", "na\xc3\xafve \"quoted\" \\", NULL};
    const char *path = tpath("round.safetensors");
    cz_status s = cz_safetensors_write(path, meta, entries, n);
    CHECK(s == CZ_OK, "write: %s", cz_last_error());

    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644,
          "mode %o, want 644", (unsigned)(sb.st_mode & 0777));
    /* Layout: padded header, data in the given order. */
    FILE *f = fopen(path, "rb");
    unsigned char head[8 + 32] = {0};
    CHECK(f && fread(head, 1, sizeof head, f) == sizeof head, "reread");
    if (f)
        fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | head[i];
    CHECK(hlen % 8 == 0, "header length %llu is not a multiple of 8",
          (unsigned long long)hlen);
    CHECK(!memcmp(head + 8, "{\"__metadata__\":{\"arch\":", 24),
          "header is not compact JSON with sorted keys: %.32s", head + 8);
    uint64_t data_bytes = 12 * 4 + 70 * 2 + N_BIG * 2 + 0 + 4 + N_BIG * 4;
    CHECK((uint64_t)sb.st_size == 8 + hlen + data_bytes, "file size %lld",
          (long long)sb.st_size);

    cz_safetensors *st = NULL;
    s = cz_safetensors_open(path, &st);
    CHECK(s == CZ_OK && st, "open: %s", cz_last_error());
    if (!st)
        return;
    CHECK(cz_safetensors_count(st) == n, "count %d", cz_safetensors_count(st));
    const char *sorted[] = {"big", "c", "dec.b", "empty", "enc.a", "scalar"};
    for (int i = 0; i < n; i++)
        CHECK(cz_safetensors_name(st, i) &&
                  !strcmp(cz_safetensors_name(st, i), sorted[i]),
              "name %d is %s, want %s", i, cz_safetensors_name(st, i),
              sorted[i]);
    CHECK(!cz_safetensors_name(st, n) && !cz_safetensors_name(st, -1),
          "name out of range");
    for (int i = 0; meta[i]; i += 2) {
        const char *v = cz_safetensors_metadata(st, meta[i]);
        CHECK(v && !strcmp(v, meta[i + 1]), "metadata %s = %s", meta[i], v);
    }
    CHECK(!cz_safetensors_metadata(st, "absent"), "absent metadata key");

    static float got[N_BIG];
    for (int i = 0; i < n; i++) {
        const cz_st_entry *e = &entries[i];
        cz_dtype dt;
        int ndim;
        int64_t shape[CZ_ST_MAX_DIMS];
        s = cz_safetensors_info(st, e->name, &dt, &ndim, shape);
        CHECK(s == CZ_OK && dt == e->dtype && ndim == e->ndim &&
                  !memcmp(shape, e->shape, (size_t)ndim * sizeof *shape),
              "%s: info", e->name);
        s = cz_safetensors_read_f32(st, e->name, e->shape, e->ndim, got);
        CHECK(s == CZ_OK, "read %s: %s", e->name, cz_last_error());
        long bad = -1;
        for (long j = 0; j < numel(e) && bad < 0; j++)
            if (!same(got[j], expect_after(e->dtype, e->data[j])))
                bad = j;
        CHECK(bad < 0, "%s[%ld]: read %a, wrote %a", e->name, bad,
              bad < 0 ? 0.0 : (double)got[bad],
              bad < 0 ? 0.0 : (double)e->data[bad]);
    }
    cz_safetensors_close(st);

    /* No metadata at all, and no tensors at all. */
    s = cz_safetensors_write(path, NULL, NULL, 0);
    CHECK(s == CZ_OK, "write empty: %s", cz_last_error());
    s = cz_safetensors_open(path, &st);
    CHECK(s == CZ_OK && cz_safetensors_count(st) == 0 &&
              !cz_safetensors_metadata(st, "arch"),
          "empty file: %s", cz_last_error());
    cz_safetensors_close(st);
    cz_safetensors_close(NULL);
    CHECK(count_entries(dir) == 1, "%d files in %s, want 1 (no temp files)",
          count_entries(dir), dir);
}

/* ------------------------------------------- names and shapes, atomicity */

static int mentions(const char *path, const char *what)
{
    const char *msg = cz_last_error();
    return strstr(msg, path) && strstr(msg, what);
}

static void test_expectations(void)
{
    static float w[64 * 3 * 7 * 7], bias[64];
    const cz_st_entry entries[] = {
        {"enc.conv1.weight", CZ_DT_F32, 4, {64, 3, 7, 7}, w},
        {"enc.conv1.bias", CZ_DT_BF16, 1, {64}, bias},
    };
    const char *path = tpath("model.safetensors");
    cz_status s = cz_safetensors_write(path, NULL, entries, 2);
    CHECK(s == CZ_OK, "write: %s", cz_last_error());
    cz_safetensors *st = NULL;
    s = cz_safetensors_open(path, &st);
    CHECK(s == CZ_OK, "open: %s", cz_last_error());
    if (!st)
        return;

    const int64_t want[] = {64, 1, 7, 7};
    s = cz_safetensors_read_f32(st, "enc.conv1.weight", want, 4, w);
    char msg[600];
    snprintf(msg, sizeof msg, "%s: tensor 'enc.conv1.weight' has shape "
             "[64,3,7,7], expected [64,1,7,7]", path);
    CHECK(s == CZ_ERR_FORMAT && !strcmp(cz_last_error(), msg),
          "shape mismatch message: %s", cz_last_error());
    const int64_t flat[] = {64, 3, 49};
    s = cz_safetensors_read_f32(st, "enc.conv1.weight", flat, 3, w);
    CHECK(s == CZ_ERR_FORMAT && mentions(path, "expected [64,3,49]"),
          "rank mismatch: %s", cz_last_error());
    s = cz_safetensors_read_f32(st, "enc.conv2.weight", want, 4, w);
    CHECK(s == CZ_ERR_FORMAT && mentions(path, "'enc.conv2.weight' is missing"),
          "missing tensor: %s", cz_last_error());

    const char *exact[] = {"enc.conv1.bias", "enc.conv1.weight"};
    CHECK(cz_safetensors_check_names(st, exact, 2) == CZ_OK, "names: %s",
          cz_last_error());
    const char *more[] = {"enc.conv1.weight", "enc.conv1.bias", "enc.bn1.weight"};
    s = cz_safetensors_check_names(st, more, 3);
    CHECK(s == CZ_ERR_FORMAT && mentions(path, "'enc.bn1.weight' is missing"),
          "missing name: %s", cz_last_error());
    s = cz_safetensors_check_names(st, exact + 1, 1);
    CHECK(s == CZ_ERR_FORMAT &&
              mentions(path, "unexpected tensor 'enc.conv1.bias'"),
          "unexpected name: %s", cz_last_error());
    cz_safetensors_close(st);
}

static void expect_write_fails(const char *what, cz_status want,
                               const char *path, const char *const *meta,
                               const cz_st_entry *entries, int n)
{
    int files = count_entries(dir);
    cz_status s = cz_safetensors_write(path, meta, entries, n);
    CHECK(s == want, "%s: status %d (%s), want %d", what, s, cz_last_error(),
          want);
    CHECK(strstr(cz_last_error(), path), "%s: message lacks the path: %s",
          what, cz_last_error());
    CHECK(count_entries(dir) == files, "%s: left %d files, had %d", what,
          count_entries(dir), files);
    printf("  write refused (%s): %s\n", what, cz_last_error());
}

static void test_atomic_write(void)
{
    static float v1[4] = {1, 2, 3, 4}, v2[4] = {5, 6, 7, 8};
    static float big[1 << 18];
    const char *path = tpath("atomic.safetensors");
    cz_st_entry e = {"w", CZ_DT_F32, 1, {4}, v1};
    const char *meta[] = {"version", "1", NULL};
    CHECK(cz_safetensors_write(path, meta, &e, 1) == CZ_OK, "write v1: %s",
          cz_last_error());
    int files = count_entries(dir);

    /* Bad arguments: refused before any file is created. */
    cz_st_entry dup[2] = {e, e};
    expect_write_fails("duplicate name", CZ_ERR_INVALID, path, NULL, dup, 2);
    cz_st_entry bad = e;
    bad.name = "__metadata__";
    expect_write_fails("reserved name", CZ_ERR_INVALID, path, NULL, &bad, 1);
    bad.name = "\xff\xfe";
    expect_write_fails("non-UTF-8 name", CZ_ERR_INVALID, path, NULL, &bad, 1);
    bad = e;
    bad.dtype = (cz_dtype)7;
    expect_write_fails("bad dtype", CZ_ERR_INVALID, path, NULL, &bad, 1);
    bad = e;
    bad.ndim = CZ_ST_MAX_DIMS + 1;
    expect_write_fails("too many dims", CZ_ERR_INVALID, path, NULL, &bad, 1);
    bad = e;
    bad.shape[0] = -4;
    expect_write_fails("negative dim", CZ_ERR_INVALID, path, NULL, &bad, 1);
    bad = e;
    bad.data = NULL;
    expect_write_fails("NULL data", CZ_ERR_INVALID, path, NULL, &bad, 1);
    bad = (cz_st_entry){"w", CZ_DT_F32, 2, {INT64_C(1) << 62, 8}, v1};
    expect_write_fails("overflowing shape", CZ_ERR_TOO_LARGE, path, NULL,
                       &bad, 1);
    const char *odd_meta[] = {"key", NULL};
    expect_write_fails("metadata without value", CZ_ERR_INVALID, path,
                       odd_meta, &e, 1);
    const char *dup_meta[] = {"k", "1", "k", "2", NULL};
    expect_write_fails("duplicate metadata", CZ_ERR_INVALID, path, dup_meta,
                       &e, 1);

    /* I/O failures: nothing appears, nothing is left behind. */
    expect_write_fails("missing directory", CZ_ERR_IO,
                       tpath("no/such/dir/m.safetensors"), NULL, &e, 1);
    const char *subdir = tpath("a_directory");
    CHECK(mkdir(subdir, 0755) == 0, "mkdir %s", subdir);
    expect_write_fails("target is a directory", CZ_ERR_IO, subdir, NULL, &e, 1);
    CHECK(rmdir(subdir) == 0, "%s was not left empty", subdir);

    /* A write that fails half-way (file size limit) keeps the old file. */
    cz_st_entry huge = {"w", CZ_DT_F32, 1, {1 << 18}, big};
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = 100000;
    signal(SIGXFSZ, SIG_IGN); /* turn the signal into EFBIG */
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    expect_write_fails("file size limit", CZ_ERR_IO, path, NULL, &huge, 1);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0, "restore rlimit");
    signal(SIGXFSZ, SIG_DFL);

    cz_safetensors *st = NULL;
    float got[4];
    const int64_t shape[] = {4};
    CHECK(cz_safetensors_open(path, &st) == CZ_OK &&
              cz_safetensors_read_f32(st, "w", shape, 1, got) == CZ_OK &&
              !memcmp(got, v1, sizeof got) &&
              !strcmp(cz_safetensors_metadata(st, "version"), "1"),
          "old file damaged: %s", cz_last_error());
    cz_safetensors_close(st);

    /* A successful overwrite replaces it. */
    e.data = v2;
    meta[1] = "2";
    CHECK(cz_safetensors_write(path, meta, &e, 1) == CZ_OK, "write v2: %s",
          cz_last_error());
    st = NULL;
    CHECK(cz_safetensors_open(path, &st) == CZ_OK &&
              cz_safetensors_read_f32(st, "w", shape, 1, got) == CZ_OK &&
              !memcmp(got, v2, sizeof got) &&
              !strcmp(cz_safetensors_metadata(st, "version"), "2"),
          "overwrite: %s", cz_last_error());
    cz_safetensors_close(st);
    CHECK(count_entries(dir) == files, "%d files, want %d", count_entries(dir),
          files);
}

/* ------------------------------------------------------ malformed corpus */

static void put_file(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0,
          "cannot write %s", path);
}

/* A file with the given header text and data_len bytes of data. */
static void put_st(const char *path, const char *header, size_t data_len)
{
    size_t n = strlen(header);
    unsigned char *buf = calloc(1, 8 + n + data_len);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, n);
    put_file(path, buf, 8 + n + data_len);
    free(buf);
}

static void expect_reject(const char *path, cz_status want, const char *what)
{
    cz_safetensors *st = (cz_safetensors *)&st; /* must be reset to NULL */
    cz_status s = cz_safetensors_open(path, &st);
    CHECK(s != CZ_OK && (want == CZ_OK || s == want) && st == NULL,
          "%s: status %d, want %d", path, s, want);
    CHECK(mentions(path, what), "%s: message lacks \"%s\": %s", path, what,
          cz_last_error());
    printf("  rejected: %s\n", cz_last_error());
    if (s == CZ_OK)
        cz_safetensors_close(st);
}

static void expect_accept(const char *path, int count)
{
    cz_safetensors *st = NULL;
    cz_status s = cz_safetensors_open(path, &st);
    CHECK(s == CZ_OK && cz_safetensors_count(st) == count,
          "%s: status %d, count %d, want %d: %s", path, s,
          cz_safetensors_count(st), count, cz_last_error());
    cz_safetensors_close(st);
}

#define T(dtype, shape, b, e)                                                 \
    "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e \
    "]}"

static const struct {
    const char *file, *header;
    size_t data_len;
    cz_status status; /* CZ_OK: any failure */
    const char *what; /* must appear in the message */
} corpus[] = {
    /* Header syntax. */
    {"json_cut", "{\"w\":", 0, CZ_ERR_FORMAT, "not valid JSON"},
    {"json_array", "[1,2]", 0, CZ_ERR_FORMAT, "not a JSON object"},
    {"json_string", "\"w\"", 0, CZ_ERR_FORMAT, "not a JSON object"},
    {"json_number", "42", 0, CZ_ERR_FORMAT, "not a JSON object"},
    {"json_leading_space", " {}", 0, CZ_ERR_FORMAT, "not a JSON object"},
    {"json_trailing", "{} x", 0, CZ_ERR_FORMAT, "not valid JSON"},
    {"json_utf8", "{\"\xff\":1}", 0, CZ_ERR_FORMAT, "not valid JSON"},
    {"json_big_int", "{\"w\":" T("F32", "[1]", 0, 100000000000000000000) "}",
     4, CZ_ERR_FORMAT, "not valid JSON"},
    {"duplicate_name",
     "{\"w\":" T("F32", "[1]", 0, 4) ",\"w\":" T("F32", "[1]", 4, 8) "}", 8,
     CZ_ERR_FORMAT, "duplicate"},
    /* Entries. */
    {"entry_number", "{\"w\":5}", 0, CZ_ERR_FORMAT, "'w': entry is not"},
    {"entry_extra_key",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
     "\"x\":1}}", 4, CZ_ERR_FORMAT, "unexpected key 'x'"},
    {"dtype_missing", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     CZ_ERR_FORMAT, "'w': dtype"},
    {"dtype_number",
     "{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     CZ_ERR_FORMAT, "'w': dtype"},
    {"dtype_i64", "{\"w\":" T("I64", "[1]", 0, 8) "}", 8, CZ_ERR_FORMAT,
     "unsupported dtype 'I64'"},
    {"dtype_f64", "{\"w\":" T("F64", "[1]", 0, 8) "}", 8, CZ_ERR_FORMAT,
     "unsupported dtype 'F64'"},
    {"dtype_u8", "{\"w\":" T("U8", "[4]", 0, 4) "}", 4, CZ_ERR_FORMAT,
     "unsupported dtype 'U8'"},
    {"dtype_lowercase", "{\"w\":" T("f32", "[1]", 0, 4) "}", 4,
     CZ_ERR_FORMAT, "unsupported dtype 'f32'"},
    {"shape_missing", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}",
     4, CZ_ERR_FORMAT, "'w': shape"},
    {"shape_number", "{\"w\":" T("F32", "4", 0, 16) "}", 16, CZ_ERR_FORMAT,
     "'w': shape"},
    {"shape_negative", "{\"w\":" T("F32", "[-1]", 0, 4) "}", 4,
     CZ_ERR_FORMAT, "'w': shape entry 0"},
    {"shape_real", "{\"w\":" T("F32", "[2,2.0]", 0, 16) "}", 16,
     CZ_ERR_FORMAT, "'w': shape entry 1"},
    {"shape_string", "{\"w\":" T("F32", "[\"4\"]", 0, 16) "}", 16,
     CZ_ERR_FORMAT, "'w': shape entry 0"},
    {"shape_9_dims", "{\"w\":" T("F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4,
     CZ_ERR_FORMAT, "9 dimensions"},
    {"shape_overflow",
     "{\"w\":" T("F32", "[4294967296,4294967296,0]", 0, 0) "}", 0,
     CZ_ERR_TOO_LARGE, "overflows"},
    {"bytes_overflow", "{\"w\":" T("F32", "[4611686018427387904]", 0, 0) "}",
     0, CZ_ERR_TOO_LARGE, "overflows"},
    {"offsets_missing", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
     CZ_ERR_FORMAT, "'w': data_offsets"},
    {"offsets_three",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
     CZ_ERR_FORMAT, "'w': data_offsets"},
    {"offsets_negative", "{\"w\":" T("F32", "[1]", -4, 0) "}", 4,
     CZ_ERR_FORMAT, "'w': data_offsets"},
    {"offsets_real", "{\"w\":" T("F32", "[1]", 0.0, 4.0) "}", 4,
     CZ_ERR_FORMAT, "'w': data_offsets"},
    {"offsets_reversed", "{\"w\":" T("F32", "[1]", 4, 0) "}", 4,
     CZ_ERR_FORMAT, "end before they begin"},
    /* Sizes and layout. */
    {"bytes_mismatch", "{\"w\":" T("F32", "[2,2]", 0, 12) "}", 12,
     CZ_ERR_FORMAT, "need 16"},
    {"bytes_mismatch_f16", "{\"w\":" T("F16", "[3]", 0, 4) "}", 4,
     CZ_ERR_FORMAT, "need 6"},
    {"past_end", "{\"w\":" T("F32", "[4]", 0, 16) "}", 8, CZ_ERR_FORMAT,
     "past the end"},
    {"past_end_huge", "{\"w\":" T("F32", "[1]", 0, 9223372036854775807) "}",
     4, CZ_ERR_FORMAT, "past the end"},
    {"overlap",
     "{\"a\":" T("F32", "[2]", 0, 8) ",\"b\":" T("F32", "[2]", 4, 12) "}", 12,
     CZ_ERR_FORMAT, "overlap"},
    {"overlap_same",
     "{\"a\":" T("F32", "[2]", 0, 8) ",\"b\":" T("BF16", "[4]", 0, 8) "}", 8,
     CZ_ERR_FORMAT, "overlap"},
    {"overlap_empty_inside",
     "{\"a\":" T("F32", "[2]", 0, 8) ",\"e\":" T("F32", "[0]", 4, 4) "}", 8,
     CZ_ERR_FORMAT, "overlap"},
    {"gap_between",
     "{\"a\":" T("F32", "[2]", 0, 8) ",\"b\":" T("F32", "[2]", 12, 20) "}", 20,
     CZ_ERR_FORMAT, "gap"},
    {"gap_at_start", "{\"a\":" T("F32", "[2]", 4, 12) "}", 12, CZ_ERR_FORMAT,
     "gap"},
    {"gap_at_end", "{\"a\":" T("F32", "[2]", 0, 8) "}", 12, CZ_ERR_FORMAT,
     "gap"},
    {"gap_no_tensors", "{}", 4, CZ_ERR_FORMAT, "gap"},
    /* Metadata: a string -> string map. */
    {"meta_string", "{\"__metadata__\":\"unet\"}", 0, CZ_ERR_FORMAT,
     "__metadata__ is not a JSON object"},
    {"meta_array", "{\"__metadata__\":[\"unet\"]}", 0, CZ_ERR_FORMAT,
     "__metadata__ is not a JSON object"},
    {"meta_number", "{\"__metadata__\":{\"ngf\":64}}", 0, CZ_ERR_FORMAT,
     "value of 'ngf' is not a string"},
    {"meta_null", "{\"__metadata__\":{\"arch\":null}}", 0, CZ_ERR_FORMAT,
     "value of 'arch' is not a string"},
    {"meta_nested", "{\"__metadata__\":{\"arch\":{\"name\":\"unet\"}}}", 0,
     CZ_ERR_FORMAT, "value of 'arch' is not a string"},
    {"meta_duplicate",
     "{\"__metadata__\":{\"arch\":\"a\",\"arch\":\"b\"}}", 0, CZ_ERR_FORMAT,
     "duplicate"},
};

static void test_corpus(void)
{
    int before = check_failed;
    for (size_t i = 0; i < sizeof corpus / sizeof *corpus; i++) {
        char name[128];
        snprintf(name, sizeof name, "bad_%s.safetensors", corpus[i].file);
        const char *path = tpath(name);
        put_st(path, corpus[i].header, corpus[i].data_len);
        expect_reject(path, corpus[i].status, corpus[i].what);
        unlink(path);
    }

    /* Patches of a good file. */
    static float v[6] = {1, 2, 3, 4, 5, 6};
    const cz_st_entry entries[] = {{"a", CZ_DT_F32, 2, {2, 2}, v},
                                   {"b", CZ_DT_BF16, 1, {2}, v + 4}};
    const char *good = tpath("good.safetensors");
    CHECK(cz_safetensors_write(good, NULL, entries, 2) == CZ_OK, "write: %s",
          cz_last_error());
    unsigned char file[512];
    FILE *f = fopen(good, "rb");
    size_t size = f ? fread(file, 1, sizeof file, f) : 0;
    if (f)
        fclose(f);
    CHECK(size > 8 && size < sizeof file, "good file is %zu bytes", size);
    expect_accept(good, 2);
    const char *path = tpath("patched.safetensors");

    put_file(path, file, 0);
    expect_reject(path, CZ_ERR_FORMAT, "file is 0 bytes");
    put_file(path, file, 5);
    expect_reject(path, CZ_ERR_FORMAT, "too short");
    unsigned char patched[sizeof file];
    memcpy(patched, file, size);
    memcpy(patched, "\xbe\xba\xfe\xca\xef\xbe\xad\xde", 8);
    put_file(path, patched, size);
    expect_reject(path, CZ_ERR_FORMAT, "header length 16045690984503098046");
    memcpy(patched, "\x01\xe1\xf5\x05\0\0\0\0", 8); /* 100000001 */
    put_file(path, patched, size);
    expect_reject(path, CZ_ERR_FORMAT, "limit");
    memcpy(patched, "\0\0\0\0\0\0\0\0", 8);
    put_file(path, patched, size);
    expect_reject(path, CZ_ERR_FORMAT, "header length is 0");
    memcpy(patched, "PK\3\4\0\0\0\0", 8); /* the magic of another format */
    put_file(path, patched, size);
    expect_reject(path, CZ_ERR_FORMAT, "header length");
    memcpy(patched, file, 8);
    patched[0]++; /* one byte of the data is now read as the header */
    put_file(path, patched, size);
    expect_reject(path, CZ_ERR_FORMAT, "not valid JSON");
    memcpy(patched, file, size);
    patched[size] = 0;
    put_file(path, patched, size + 1);
    expect_reject(path, CZ_ERR_FORMAT, "gap");

    /* Every proper prefix of the good file is truncated and must say so. */
    int truncated_ok = 1;
    for (size_t len = 0; len < size; len++) {
        put_file(path, file, len);
        cz_safetensors *st = NULL;
        cz_status s = cz_safetensors_open(path, &st);
        const char *msg = cz_last_error();
        int clear = strstr(msg, path) &&
                    (strstr(msg, "too short") || strstr(msg, "runs past") ||
                     strstr(msg, "past the end"));
        CHECK(s == CZ_ERR_FORMAT && !st && clear,
              "prefix of %zu bytes: status %d: %s", len, s, msg);
        truncated_ok &= s == CZ_ERR_FORMAT && clear;
        cz_safetensors_close(st);
    }
    printf("  all %zu truncations rejected: %s\n", size,
           truncated_ok ? "yes" : "NO");

    expect_reject(tpath("does_not_exist.safetensors"), CZ_ERR_IO,
                  "cannot open");
    expect_reject(dir, CZ_ERR_IO, "not a regular file");
    unlink(path);
    unlink(good);
    printf("corpus: %s\n", check_failed == before ? "ok" : "FAILED");
}

/* Unusual but valid files that must load. */
static void test_valid_edge_cases(void)
{
    const char *path = tpath("edge.safetensors");
    put_st(path, "{}", 0);
    expect_accept(path, 0);
    put_st(path, "{}        \n\t", 0); /* whitespace padding */
    expect_accept(path, 0);
    put_st(path, "{\"__metadata__\":{}}", 0);
    expect_accept(path, 0);
    put_st(path,
           "{\"e\":" T("F16", "[0,5]", 0, 0) ",\"a\":" T("F32", "[2]", 0, 8)
           ",\"s\":" T("BF16", "[]", 8, 10) ",\"z\":" T("F32", "[3,0]", 10, 10)
           "}",
           10);
    expect_accept(path, 4);

    /* Odd header length, so the data is unaligned in memory. */
    const char *hdr = "{\"w\":" T("F32", "[2]", 0, 8) ",\"h\":"
                      T("F16", "[1]", 8, 10) "} ";
    size_t n = strlen(hdr) % 2 ? strlen(hdr) : strlen(hdr) - 1;
    unsigned char buf[256] = {0};
    buf[0] = (unsigned char)n;
    memcpy(buf + 8, hdr, n);
    CHECK(n % 2 == 1, "header length %zu is even", n);
    const float w[2] = {1.5f, -2.25f};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++)
            buf[8 + n + 4 * (size_t)i + (size_t)k] =
                (unsigned char)(bits(w[i]) >> (8 * k));
    buf[8 + n + 8] = 0x00; /* f16 0xbc00 = -1 */
    buf[8 + n + 9] = 0xbc;
    put_file(path, buf, 8 + n + 10);
    cz_safetensors *st = NULL;
    float got[2];
    const int64_t two[] = {2}, one[] = {1};
    CHECK(cz_safetensors_open(path, &st) == CZ_OK &&
              cz_safetensors_read_f32(st, "w", two, 1, got) == CZ_OK &&
              got[0] == w[0] && got[1] == w[1] &&
              cz_safetensors_read_f32(st, "h", one, 1, got) == CZ_OK &&
              got[0] == -1.0f,
          "unaligned read: %s", cz_last_error());
    cz_safetensors_close(st);
    unlink(path);
}

/* ----------------------------------------- fixture from numpy / PyTorch */

static void test_python_fixture(void)
{
    cz_safetensors *st = NULL;
    cz_status s = cz_safetensors_open(FIXTURE, &st);
    CHECK(s == CZ_OK, "%s", cz_last_error());
    if (!st)
        return;
    const char *names[] = {"src", "src.f16", "src.f16.f32", "src.bf16",
                           "src.bf16.f32", "grid"};
    CHECK(cz_safetensors_check_names(st, names, 6) == CZ_OK, "%s",
          cz_last_error());
    const char *arch = cz_safetensors_metadata(st, "arch");
    CHECK(arch && !strcmp(arch, "reference"), "arch metadata %s", arch);

    int ndim = 0;
    int64_t shape[CZ_ST_MAX_DIMS] = {0};
    cz_dtype dt;
    s = cz_safetensors_info(st, "src.bf16", &dt, &ndim, shape);
    CHECK(s == CZ_OK && dt == CZ_DT_BF16 && ndim == 1 && shape[0] > 30 &&
              shape[0] < 1000,
          "src.bf16: dtype %d, ndim %d, n %lld", dt, ndim,
          (long long)shape[0]);
    long n = (long)shape[0];
    float src[1000], f16[1000], f16_np[1000], bf16[1000], bf16_torch[1000];
    int ok = ndim == 1 && n < 1000 &&
             cz_safetensors_read_f32(st, "src", shape, 1, src) == CZ_OK &&
             cz_safetensors_read_f32(st, "src.f16", shape, 1, f16) == CZ_OK &&
             cz_safetensors_read_f32(st, "src.f16.f32", shape, 1, f16_np) ==
                 CZ_OK &&
             cz_safetensors_read_f32(st, "src.bf16", shape, 1, bf16) == CZ_OK &&
             cz_safetensors_read_f32(st, "src.bf16.f32", shape, 1,
                                     bf16_torch) == CZ_OK;
    CHECK(ok, "reading the fixture: %s", cz_last_error());
    for (long i = 0; ok && i < n; i++) {
        /* Our widening agrees with numpy's and PyTorch's... */
        CHECK(same(f16[i], f16_np[i]), "[%ld] f16 widened to %a, numpy %a", i,
              (double)f16[i], (double)f16_np[i]);
        CHECK(same(bf16[i], bf16_torch[i]), "[%ld] bf16 widened to %a, torch "
              "%a", i, (double)bf16[i], (double)bf16_torch[i]);
        /* ...and so does our narrowing of the same inputs. */
        float h = cz_f16_to_f32(cz_f32_to_f16(src[i]));
        float b = cz_bf16_to_f32(cz_f32_to_bf16(src[i]));
        CHECK(same(h, f16_np[i]), "[%ld] %a narrowed to f16 %a, numpy %a", i,
              (double)src[i], (double)h, (double)f16_np[i]);
        CHECK(same(b, bf16_torch[i]), "[%ld] %a narrowed to bf16 %a, torch "
              "%a", i, (double)src[i], (double)b, (double)bf16_torch[i]);
    }
    const int64_t grid_shape[] = {2, 3, 1, 1};
    float grid[6];
    s = cz_safetensors_read_f32(st, "grid", grid_shape, 4, grid);
    CHECK(s == CZ_OK, "grid: %s", cz_last_error());
    for (int i = 0; s == CZ_OK && i < 6; i++)
        CHECK(grid[i] == 0.5f * (float)i, "grid[%d] = %g", i, (double)grid[i]);
    cz_safetensors_close(st);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    test_conversions();
    test_round_trip();
    test_expectations();
    test_atomic_write();
    test_corpus();
    test_valid_edge_cases();
    test_python_fixture();

    /* Everything the tests made is removed by name; anything else left is a
     * stray temporary file and fails the test. */
    unlink(tpath("round.safetensors"));
    unlink(tpath("model.safetensors"));
    unlink(tpath("atomic.safetensors"));
    CHECK(count_entries(dir) == 0, "%d stray files in %s", count_entries(dir),
          dir);
    if (count_entries(dir) == 0)
        rmdir(dir);
    return check_finish("test_safetensors");
}
