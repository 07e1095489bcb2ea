/* Verify-mode patterns and the sector model: see pattern.h. */
#include "pattern.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pat_header {
    uint32_t magic;
    uint32_t gen;
    uint64_t lba;
    uint64_t seed;
    uint64_t check;
};
_Static_assert(sizeof(struct pat_header) == 32, "pattern header size");

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t header_check(uint64_t seed, uint64_t lba, uint32_t gen)
{
    return mix64(seed ^ mix64(lba ^ mix64((uint64_t)gen | (uint64_t)PAT_MAGIC << 32)));
}

void pat_fill(void *sector, uint64_t seed, uint64_t lba, uint32_t gen)
{
    struct pat_header h = { PAT_MAGIC, gen, lba, seed, header_check(seed, lba, gen) };
    memcpy(sector, &h, sizeof(h));
    uint64_t s = h.check, w[(PAT_SECTOR - sizeof(h)) / 8];
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        s += 0x9e3779b97f4a7c15ull;
        w[i] = mix64(s);
    }
    memcpy((uint8_t *)sector + sizeof(h), w, sizeof(w));
}

bool pat_check(const void *sector, uint64_t seed, uint64_t lba, uint32_t gen,
               struct pat_found *found)
{
    if (gen == PAT_GEN_UNKNOWN)
        return true;
    uint8_t want[PAT_SECTOR];
    if (gen == PAT_GEN_ZERO)
        memset(want, 0, sizeof(want));
    else
        pat_fill(want, seed, lba, gen);
    if (memcmp(sector, want, PAT_SECTOR) == 0)
        return true;
    if (found) {
        const uint8_t *p = sector;
        memset(found, 0, sizeof(*found));
        unsigned i = 0;
        while (i < PAT_SECTOR && p[i] == want[i])
            i++;
        found->first_bad = i;
        found->zero = true;
        for (unsigned j = 0; j < PAT_SECTOR; j++)
            if (p[j]) {
                found->zero = false;
                break;
            }
        struct pat_header h;
        memcpy(&h, sector, sizeof(h));
        if (h.magic == PAT_MAGIC && h.check == header_check(h.seed, h.lba, h.gen)) {
            found->ours = true;
            found->seed = h.seed;
            found->lba = h.lba;
            found->gen = h.gen;
        }
    }
    return false;
}

void pat_describe(char *out, size_t outlen, uint64_t seed, uint64_t lba,
                  uint32_t want_gen, const struct pat_found *f)
{
    char want[48];
    if (want_gen == PAT_GEN_ZERO)
        snprintf(want, sizeof(want), "zeroes");
    else
        snprintf(want, sizeof(want), "generation %u", want_gen);
    if (f->zero)
        snprintf(out, outlen, "sector %llu: expected %s, read zeroes",
                 (unsigned long long)lba, want);
    else if (f->ours)
        snprintf(out, outlen, "sector %llu: expected %s, read the data of "
                 "sector %llu generation %u seed %#llx%s (first bad byte %u)",
                 (unsigned long long)lba, want, (unsigned long long)f->lba,
                 f->gen, (unsigned long long)f->seed,
                 f->seed != seed ? " (another disk's or run's data)"
                 : f->lba != lba ? " (misplaced)"
                 : f->gen == want_gen ? " (corrupted)"
                 : f->gen < want_gen ? " (stale)" : " (newer)", f->first_bad);
    else
        snprintf(out, outlen, "sector %llu: expected %s, read other data "
                 "(first bad byte %u)", (unsigned long long)lba, want,
                 f->first_bad);
}

int pat_model_init(struct pat_model *m, uint64_t seed, uint64_t sectors,
                   uint32_t initial)
{
    memset(m, 0, sizeof(*m));
    if (sectors == 0 || sectors > (uint64_t)1 << 40 ||
        (initial != PAT_GEN_ZERO && initial != PAT_GEN_UNKNOWN)) {
        errno = EINVAL;
        return -1;
    }
    m->gen = malloc(sectors * sizeof(*m->gen));
    if (!m->gen)
        return -1;
    for (uint64_t i = 0; i < sectors; i++)
        m->gen[i] = initial;
    m->seed = seed;
    m->sectors = sectors;
    m->next_gen = 1;
    return 0;
}

void pat_model_free(struct pat_model *m)
{
    free(m->gen);
    m->gen = NULL;
    m->sectors = 0;
}

uint32_t pat_model_new_gen(struct pat_model *m)
{
    if (m->next_gen == PAT_GEN_ZERO || m->next_gen == PAT_GEN_UNKNOWN)
        m->next_gen = 1;
    return m->next_gen++;
}

void pat_model_set(struct pat_model *m, uint64_t lba, uint64_t count,
                   uint32_t gen)
{
    for (uint64_t i = 0; i < count && lba + i < m->sectors; i++)
        m->gen[lba + i] = gen;
}

static const char model_magic[8] = { 'X', 'F', 'M', 'O', 'D', 'E', 'L', '1' };

int pat_model_save(const struct pat_model *m, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    uint64_t hdr[3] = { m->seed, m->sectors, m->next_gen };
    bool ok = fwrite(model_magic, sizeof(model_magic), 1, f) == 1 &&
              fwrite(hdr, sizeof(hdr), 1, f) == 1 &&
              fwrite(m->gen, sizeof(*m->gen), m->sectors, f) == m->sectors;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok)
        errno = e ? e : EIO;
    return ok ? 0 : -1;
}

int pat_model_load(struct pat_model *m, const char *path)
{
    memset(m, 0, sizeof(*m));
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char magic[8];
    uint64_t hdr[3];
    int rc = -1;
    if (fread(magic, sizeof(magic), 1, f) != 1 ||
        memcmp(magic, model_magic, sizeof(magic)) != 0 ||
        fread(hdr, sizeof(hdr), 1, f) != 1 || hdr[1] == 0 ||
        hdr[1] > (uint64_t)1 << 40 || hdr[2] > UINT32_MAX) {
        errno = EINVAL;
        goto out;
    }
    if (pat_model_init(m, hdr[0], hdr[1], PAT_GEN_UNKNOWN) < 0)
        goto out;
    if (fread(m->gen, sizeof(*m->gen), m->sectors, f) != m->sectors) {
        pat_model_free(m);
        errno = EINVAL;
        goto out;
    }
    m->next_gen = (uint32_t)hdr[2];
    rc = 0;
out:
    fclose(f);
    return rc;
}

uint64_t pat_check_range(const struct pat_model *m, const void *buf,
                         uint64_t lba, uint64_t count, char *report,
                         size_t reportlen)
{
    uint64_t bad = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t s = lba + i;
        uint32_t gen = s < m->sectors ? m->gen[s] : PAT_GEN_UNKNOWN;
        struct pat_found f;
        if (pat_check((const uint8_t *)buf + i * PAT_SECTOR, m->seed, s, gen, &f))
            continue;
        if (bad++ == 0 && report)
            pat_describe(report, reportlen, m->seed, s, gen, &f);
    }
    return bad;
}

void pat_rng_seed(struct pat_rng *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t pat_rng_next(struct pat_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    return mix64(r->s);
}

uint64_t pat_rng_below(struct pat_rng *r, uint64_t n)
{
    /* Rejection sampling keeps it uniform. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do
        v = pat_rng_next(r);
    while (v >= limit);
    return v % n;
}
