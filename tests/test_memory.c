/* Peak memory of colouring a 24-megapixel photo with the command, as the
 * README states it. `colorize big.jpg -o out.jpg` runs in a child process
 * and its peak resident set (getrusage's ru_maxrss) is measured, for a gray
 * scan and for a colour photo, and so is the same command on a 1x1 photo:
 * the difference is the photo's share, which must stay under a bound in
 * bytes per pixel whatever the machine's thread count; the whole peak with
 * the tiny model (weights of a few megabytes) must stay under an absolute
 * bound. The README adds a full-size model's share.
 *
 * Under AddressSanitizer memory is not comparable (shadow memory, freed
 * blocks held in quarantine): the runs must still succeed, the bounds are
 * not checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "pipeline_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* 6000 x 4000: a 24-megapixel camera's frame. */
enum { BIG_W = 6000, BIG_H = 4000 };

/* The README's bounds (measured on the reference machine: 8.0 and 10.0
 * bytes a pixel). What a pixel costs while colouring: the input (1 gray, 3
 * colour), L* (4) and the output (3); the JPEG encoder streams rows (standard
 * Huffman tables, no whole-picture coefficient buffer). */
#define GRAY_BYTES_PER_PIXEL 10.0
#define COLOUR_BYTES_PER_PIXEL 11.5
#define PEAK_BOUND_MIB 320.0

static char tmpdir[] = "/tmp/cz_test_memory_XXXXXX";

/* Runs argv and returns its exit status (-1 if it did not exit), with its
 * peak RSS in MiB and wall time. */
static int run_measured(char *const *argv, double *mib, double *seconds)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (pid < 0 || wait4(pid, &st, 0, &ru) != pid)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *mib = (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
    *seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Colours a W x H photo saved as JPEG; returns the peak RSS in MiB (or -1). */
static double measure(const char *exe, const char *model, int W, int H,
                      int channels, double *seconds)
{
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/in%dx%dx%d.jpg", tmpdir, W, H, channels);
    snprintf(out, sizeof out, "%s/out.jpg", tmpdir);
    cz_image *img = pattern_image(W, H, channels, 8, 7);
    CHECK(img && cz_image_save(in, img, 90) == CZ_OK, "writing %s: %s", in,
          cz_last_error());
    cz_image_free(img);

    char *argv[] = {(char *)exe, in, "-o", out, "--model", (char *)model, "-q", NULL};
    double mib = -1;
    int rc = run_measured(argv, &mib, seconds);
    CHECK(rc == 0, "colorize %s: exit %d", in, rc);
    cz_image *o = NULL;
    CHECK(cz_image_load(out, NULL, &o) == CZ_OK && o->width == W &&
              o->height == H && o->channels == 3,
          "the output is not a %dx%d RGB image: %s", W, H, cz_last_error());
    cz_image_free(o);
    remove(in);
    remove(out);
    return rc == 0 ? mib : -1;
}

static void check_photo(const char *exe, const char *model, int channels,
                        double base, double bytes_per_pixel_bound)
{
    const char *what = channels == 1 ? "gray" : "colour";
    double seconds = 0;
    double mib = measure(exe, model, BIG_W, BIG_H, channels, &seconds);
    double per_pixel = (mib - base) * 1048576.0 / ((double)BIG_W * BIG_H);
    printf("24 MP %s JPEG: peak RSS %.0f MiB, %.1f bytes a pixel over the "
           "1x1 photo's %.0f MiB, %.2f s%s\n", what, mib, per_pixel, base,
           seconds, SANITIZED ? " (AddressSanitizer: bounds not checked)" : "");
    if (SANITIZED || mib < 0)
        return;
    CHECK(per_pixel < bytes_per_pixel_bound,
          "24 MP %s photo: %.1f bytes a pixel, over the bound %.1f", what,
          per_pixel, bytes_per_pixel_bound);
    CHECK(mib < PEAK_BOUND_MIB, "24 MP %s photo: peak RSS %.0f MiB, over the "
          "bound %.0f MiB", what, mib, PEAK_BOUND_MIB);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    char exe[1024], model[1024], cwd[512];
    const char *b = build_dir();
    if (b[0] == '/')
        snprintf(exe, sizeof exe, "%s/colorize", b);
    else
        snprintf(exe, sizeof exe, "%s/%s/colorize",
                 getcwd(cwd, sizeof cwd) ? cwd : ".", b);
    snprintf(model, sizeof model, "%s/tiny.safetensors", tmpdir);
    if (make_tiny_model(model, "unet", 1) == 0) {
        double seconds;
        double base = measure(exe, model, 1, 1, 3, &seconds);
        check_photo(exe, model, 1, base, GRAY_BYTES_PER_PIXEL);
        check_photo(exe, model, 3, base, COLOUR_BYTES_PER_PIXEL);
    } else {
        CHECK(0, "cannot make the tiny model");
    }
    remove_tree(tmpdir);
    return check_finish("test_memory");
}
