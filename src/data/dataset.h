/*
 * Training data, part 1: which photos, and in which order.
 *
 * A dataset is a folder scanned recursively once, at open. Every regular file
 * whose first bytes say JPEG or PNG is kept (never judged by its name); other
 * files are counted and left out, as are hidden entries (names starting with
 * '.') and symbolic links to folders (which could loop). Paths are sorted
 * byte-wise, so indices, and every plan built on them, do not depend on the
 * order the filesystem lists a folder in.
 *
 * Each file belongs to a *source*: the part of its file name before the first
 * "__" ("clothing__0042.jpg" is from "clothing"; a name without "__" is from
 * the source ""). A source can be given a sampling weight (default 1); each
 * file is then drawn with probability proportional to its source's weight,
 * and weight 0 leaves the source out altogether.
 *
 * A plan is the order of one epoch: cz_dataset_count(ds) dataset indices that
 * depend only on (seed, epoch), never on the time or the thread count, so a
 * run resumed at an epoch sees the same photos in the same order:
 *   - sequential: 0, 1, ..., n-1 (validation);
 *   - all weights equal: a seeded shuffle, every file exactly once;
 *   - otherwise: n draws with replacement, each picking a source with
 *     probability weight x files / sum(weight x files), then a file of it
 *     uniformly, i.e. every file with probability proportional to its weight.
 * docs/training.md explains the choice.
 */
#ifndef CZ_DATA_DATASET_H
#define CZ_DATA_DATASET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/rng.h"
#include "colorize.h"

/* Longest source name a weight can name (file-name prefixes are short). */
#define CZ_SOURCE_NAME_MAX 64

typedef struct {
    char name[CZ_SOURCE_NAME_MAX]; /* the prefix before "__"; "" = no prefix */
    double weight;                 /* >= 0; 0 leaves the source out */
} cz_source_weight;

/* Parses "name=weight" (a --source-weight argument): the name is everything
 * before the last '=', the weight a finite number >= 0. */
cz_status cz_source_weight_parse(const char *spec, cz_source_weight *out);

/* Options for cz_dataset_open; NULL or a zeroed struct means every source
 * with weight 1. */
typedef struct {
    const cz_source_weight *weights; /* n_weights entries; each must name a
                                        source found in the folder */
    int n_weights;
} cz_dataset_options;

/* One source as the scan found it. */
typedef struct {
    const char *name; /* owned by the dataset */
    int files;        /* JPEG/PNG files found, including a dropped source's */
    double weight;    /* 0: dropped, its files are not in the dataset */
} cz_source_info;

typedef struct cz_dataset cz_dataset;

/* Scans dir. Fails with CZ_ERR_IO if dir or a folder below it cannot be
 * read, CZ_ERR_INVALID if it holds no JPEG/PNG file, if a weight names a
 * source that is not there (the message names it and lists those that are),
 * names one twice, is negative or not finite, or if every weight is 0. */
cz_status cz_dataset_open(const char *dir, const cz_dataset_options *opt,
                          cz_dataset **out);
void cz_dataset_free(cz_dataset *ds);

/* The folder it was opened on. */
const char *cz_dataset_dir(const cz_dataset *ds);

/* Files in use: those of sources with weight > 0, indexed 0..count-1 in
 * path order. */
int cz_dataset_count(const cz_dataset *ds);
const char *cz_dataset_path(const cz_dataset *ds, int index);
/* Index into the source list of a file in use. */
int cz_dataset_source_of(const cz_dataset *ds, int index);

/* Sources in name order, dropped ones included. */
int cz_dataset_source_count(const cz_dataset *ds);
cz_source_info cz_dataset_source(const cz_dataset *ds, int source);

/* Regular files the scan skipped because they are neither JPEG nor PNG. */
int cz_dataset_skipped(const cz_dataset *ds);

/* Prints the folder, one line per source (files, weight, share of draws)
 * and the number of skipped files. */
void cz_dataset_report(const cz_dataset *ds, FILE *out);

/* True if plans are weighted draws with replacement rather than shuffles:
 * the sources in use do not all have the same weight. */
bool cz_dataset_weighted(const cz_dataset *ds);

/* Writes the plan of one epoch, cz_dataset_count(ds) indices, into out:
 * shuffled (or weighted, see above) from (seed, epoch) when shuffle is true,
 * sequential otherwise. */
void cz_dataset_plan(const cz_dataset *ds, bool shuffle, uint64_t seed,
                     int64_t epoch, int *out);

/* Random streams of the data pipeline. Each is seeded from the run's seed
 * and the coordinates of what it decides, so no result depends on which
 * thread computed it or on what was computed before. */
enum {
    CZ_DATA_STREAM_PLAN = 1,   /* an epoch's plan: (epoch) */
    CZ_DATA_STREAM_SAMPLE = 2, /* one sample's crop and flip: (epoch, position) */
};
void cz_data_rng(cz_rng *rng, uint64_t seed, uint64_t stream, int64_t epoch,
                 int64_t position);

#endif
