/* Verify-mode data patterns and the model of what every sector should hold.
 *
 * Every 512-byte sector written by `xenfront blk verify` is a function of
 * (seed, sector number, generation): a 32-byte header naming all three plus a
 * checksum, then pseudo-random bytes drawn from a generator seeded with the
 * same triple. A sector that lands at the wrong place, a stale sector (older
 * generation), a sector of another disk or guest (other seed) or a torn
 * sector is told apart by decoding the header of what was read.
 *
 * The model keeps one 32-bit generation per sector: a generation number of a
 * write, PAT_GEN_ZERO (known to read as zeroes: a fresh sparse file) or
 * PAT_GEN_UNKNOWN (any content is accepted: never written by us, or
 * discarded while the backend promises nothing about discarded ranges). */
#ifndef NETBUS_XENFRONT_PATTERN_H
#define NETBUS_XENFRONT_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAT_SECTOR 512u
#define PAT_GEN_ZERO 0u
#define PAT_GEN_UNKNOWN 0xffffffffu
#define PAT_MAGIC 0x58465041u /* "APFX" */

/* Fills one 512-byte sector. gen must be a write generation (not ZERO or
 * UNKNOWN). */
void pat_fill(void *sector, uint64_t seed, uint64_t lba, uint32_t gen);

/* What was found in a sector that did not match. */
struct pat_found {
    bool zero;           /* all zeroes */
    bool ours;           /* a valid pattern header (checksum ok) */
    uint64_t seed, lba;  /* if ours: whose data it is */
    uint32_t gen;
    unsigned first_bad;  /* byte offset of the first differing byte */
};

/* Checks a sector against the expected generation. Returns true when it
 * matches (PAT_GEN_UNKNOWN always matches); otherwise fills *found when
 * non-NULL. */
bool pat_check(const void *sector, uint64_t seed, uint64_t lba, uint32_t gen,
               struct pat_found *found);
/* One line describing a mismatch, for reports. */
void pat_describe(char *out, size_t outlen, uint64_t seed, uint64_t lba,
                  uint32_t want_gen, const struct pat_found *found);

/* ---- the model ---------------------------------------------------------- */

struct pat_model {
    uint64_t seed;
    uint64_t sectors;  /* sectors covered, starting at 0 */
    uint32_t *gen;     /* one per sector */
    uint32_t next_gen; /* generation the next write gets */
};

/* initial: PAT_GEN_ZERO or PAT_GEN_UNKNOWN for every sector. */
int pat_model_init(struct pat_model *m, uint64_t seed, uint64_t sectors,
                   uint32_t initial);
void pat_model_free(struct pat_model *m);
/* A new generation for a write (never ZERO or UNKNOWN). */
uint32_t pat_model_new_gen(struct pat_model *m);
void pat_model_set(struct pat_model *m, uint64_t lba, uint64_t count,
                   uint32_t gen);

/* Model files: "XFMODEL1", seed, sectors, next_gen, then one little-endian
 * u32 generation per sector. Returns 0 or -1 with errno (EINVAL: not a model
 * file or truncated). */
int pat_model_save(const struct pat_model *m, const char *path);
int pat_model_load(struct pat_model *m, const char *path);

/* Checks a whole buffer of `count` sectors starting at lba against the
 * model. Returns the number of bad sectors; the first bad one is described
 * in report (when non-NULL). */
uint64_t pat_check_range(const struct pat_model *m, const void *buf,
                         uint64_t lba, uint64_t count, char *report,
                         size_t reportlen);

/* A small deterministic generator (splitmix64) for offsets and sizes. */
struct pat_rng {
    uint64_t s;
};
void pat_rng_seed(struct pat_rng *r, uint64_t seed);
uint64_t pat_rng_next(struct pat_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t pat_rng_below(struct pat_rng *r, uint64_t n);

#endif
