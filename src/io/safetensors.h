/*
 * Model files: safetensors, the format of the PyTorch and Hugging Face
 * ecosystems, so weights move between colorize and PyTorch with no converter.
 *
 * A file is
 *     u64 little-endian N | N bytes of JSON header | data section
 * The header is one JSON object. Each key but "__metadata__" names a tensor
 * and maps to {"dtype": "F32", "shape": [64, 1, 7, 7],
 * "data_offsets": [begin, end]}, offsets relative to the start of the data
 * section; tensor data is little-endian, row-major. "__metadata__", if
 * present, is a string -> string map; colorize stores the architecture name
 * and its hyper-parameters there, so a model file loads without extra flags.
 *
 * cz_safetensors_open reads the header (the data stays in the file, open
 * until cz_safetensors_close; cz_safetensors_read_f32 reads a tensor from it
 * straight into the caller's memory) and validates the file's structure
 * before returning: header length against the file size, JSON syntax (duplicate keys
 * rejected), that every metadata value is a string, every dtype (F32, F16,
 * BF16; others are rejected as unsupported), every shape (at most
 * CZ_ST_MAX_DIMS non-negative dimensions), that each tensor's byte count is
 * product(shape) * itemsize, and that the tensors tile the data section
 * exactly: no gap, no overlap, nothing past its end. Whether the names and
 * shapes are the ones an architecture expects is the caller's question, asked
 * through cz_safetensors_check_names and cz_safetensors_read_f32. Every
 * failure message starts with the file's path and names the tensor at fault.
 *
 * cz_safetensors_write writes through a temporary file in the same directory
 * and renames it into place, so readers see the old file or the complete new
 * one, never a partial write, and a failed write leaves nothing behind.
 */
#ifndef CZ_IO_SAFETENSORS_H
#define CZ_IO_SAFETENSORS_H

#include <stdint.h>

#include "colorize.h"

/* The most dimensions a tensor may have (the engine's tensors have four). */
#define CZ_ST_MAX_DIMS 8

/* Element types colorize reads and writes. */
typedef enum {
    CZ_DT_F32,  /* "F32": IEEE binary32 */
    CZ_DT_F16,  /* "F16": IEEE binary16 */
    CZ_DT_BF16, /* "BF16": bfloat16, the top half of a binary32 */
} cz_dtype;

/* An open, validated file: its bytes in memory plus the parsed index. */
typedef struct cz_safetensors cz_safetensors;

cz_status cz_safetensors_open(const char *path, cz_safetensors **out);
void cz_safetensors_close(cz_safetensors *st); /* NULL is a no-op */

/* The metadata value for key, or NULL if absent; valid until close. */
const char *cz_safetensors_metadata(const cz_safetensors *st, const char *key);

/* The tensors, in ascending byte order of their names (strcmp); names are
 * valid until close. */
int cz_safetensors_count(const cz_safetensors *st);
const char *cz_safetensors_name(const cz_safetensors *st, int i);

/* The dtype and shape of tensor name (shape has room for CZ_ST_MAX_DIMS);
 * CZ_ERR_FORMAT if the file has no such tensor. Any output may be NULL. */
cz_status cz_safetensors_info(const cz_safetensors *st, const char *name,
                              cz_dtype *dtype, int *ndim, int64_t *shape);

/* Reads tensor name into dst as fp32, after checking that it exists and has
 * exactly the expected shape (dst holds product(expect_shape) floats). F16
 * and BF16 widen exactly. Fails with CZ_ERR_FORMAT and a message such as
 *   "model.safetensors: tensor 'enc.conv1.weight' has shape [64,3,7,7],
 *    expected [64,1,7,7]" */
cz_status cz_safetensors_read_f32(const cz_safetensors *st, const char *name,
                                  const int64_t *expect_shape, int expect_ndim,
                                  float *dst);

/* Checks that the file holds exactly the tensors named in expected[0..n):
 * fails with CZ_ERR_FORMAT naming the first missing tensor, or else the first
 * (in name order) that the file has but expected does not. */
cz_status cz_safetensors_check_names(const cz_safetensors *st,
                                     const char *const *expected, int n);

/* One tensor to write. data holds product(shape) fp32 values, row-major; the
 * writer narrows them to dtype (round to nearest even, see io/half.h). data
 * may be NULL only if the tensor is empty. */
typedef struct {
    const char *name;
    cz_dtype dtype;
    int ndim;
    int64_t shape[CZ_ST_MAX_DIMS];
    const float *data;
} cz_st_entry;

/* Writes entries[0..n) to path, their data laid out in the given order.
 * meta_kv is NULL or a NULL-terminated list key, value, key, value, ...,
 * NULL of UTF-8 strings, stored as "__metadata__". Names must be distinct,
 * UTF-8, and not "__metadata__". The header is compact JSON with sorted keys,
 * padded with spaces so the data section starts 8-byte aligned. The new file
 * gets mode 0644 and replaces any existing one atomically. */
cz_status cz_safetensors_write(const char *path, const char *const *meta_kv,
                               const cz_st_entry *entries, int n);

#endif
