/*
 * kvstore: a key-value store workload in the style of redis: a chained hash
 * table of heap-allocated string keys and values, incremental-free resizing
 * by full rehash at load factor 1, driven by a seeded mix of GET (70%), SET
 * (25%) and DEL (5%) on a skewed key population. Usage: kvstore -k KEYS
 * -n OPERATIONS (KEYS below 10^10).
 *
 * The checksum covers every reply (hit or miss, and the bytes of every value
 * read), so a lost update or a wrong lookup changes it.
 */
#include "bench_common.h"

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    char *key;
    char *val;
    uint32_t klen, vlen;
} entry_t;

typedef struct {
    entry_t **slots;
    uint64_t mask; /* slot count - 1 (a power of two) */
    uint64_t used;
} table_t;

static uint64_t str_hash(const char *s, uint32_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint32_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 32);
}

/* Writes "key:" and k as ten zero-padded digits (what snprintf with
 * "key:%010lld" would give), by hand: the two C libraries' printf differ
 * a lot in speed, and this is a hot path. Returns the length (14). */
static uint32_t format_key(char *buf, int64_t k) {
    memcpy(buf, "key:", 4);
    for (int i = 13; i >= 4; i--) {
        buf[i] = (char)('0' + k % 10);
        k /= 10;
    }
    buf[14] = '\0';
    return 14;
}

static char *dup_bytes(const char *s, uint32_t n) {
    char *p = (char *)xmalloc((size_t)n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void grow(table_t *t) {
    uint64_t nmask = t->mask * 2 + 1;
    entry_t **ns = (entry_t **)xcalloc((size_t)nmask + 1, sizeof(entry_t *));
    for (uint64_t i = 0; i <= t->mask; i++) {
        entry_t *e = t->slots[i];
        while (e) {
            entry_t *next = e->next;
            e->next = ns[e->hash & nmask];
            ns[e->hash & nmask] = e;
            e = next;
        }
    }
    free(t->slots);
    t->slots = ns;
    t->mask = nmask;
}

static entry_t *lookup(table_t *t, const char *k, uint32_t kl, uint64_t hh) {
    for (entry_t *e = t->slots[hh & t->mask]; e; e = e->next)
        if (e->hash == hh && e->klen == kl && memcmp(e->key, k, kl) == 0)
            return e;
    return NULL;
}

static void set(table_t *t, const char *k, uint32_t kl, const char *v, uint32_t vl) {
    uint64_t hh = str_hash(k, kl);
    entry_t *e = lookup(t, k, kl, hh);
    if (e) {
        free(e->val);
        e->val = dup_bytes(v, vl);
        e->vlen = vl;
        return;
    }
    if (t->used > t->mask)
        grow(t);
    e = (entry_t *)xmalloc(sizeof(entry_t));
    e->hash = hh;
    e->key = dup_bytes(k, kl);
    e->klen = kl;
    e->val = dup_bytes(v, vl);
    e->vlen = vl;
    e->next = t->slots[hh & t->mask];
    t->slots[hh & t->mask] = e;
    t->used++;
}

static int del(table_t *t, const char *k, uint32_t kl) {
    uint64_t hh = str_hash(k, kl);
    entry_t **pp = &t->slots[hh & t->mask];
    for (entry_t *e = *pp; e; pp = &e->next, e = e->next)
        if (e->hash == hh && e->klen == kl && memcmp(e->key, k, kl) == 0) {
            *pp = e->next;
            free(e->key);
            free(e->val);
            free(e);
            t->used--;
            return 1;
        }
    return 0;
}

int main(int argc, char **argv) {
    int64_t keys = arg_int(argc, argv, 'k', 1000), ops = arg_int(argc, argv, 'n', 10000);
    if (keys < 1 || keys > 1000000000 || ops < 0) {
        fprintf(stderr, "usage: kvstore -k KEYS -n OPERATIONS\n");
        return 2;
    }
    table_t t = {(entry_t **)xcalloc(16, sizeof(entry_t *)), 15, 0};
    rng_t rng = {0x4ed15};
    hash_t h = HASH_INIT;
    char key[32], val[128];
    int64_t gets = 0, hits = 0, sets = 0, dels = 0, deleted = 0;
    /* preload half the key space */
    for (int64_t i = 0; i < keys; i += 2) {
        uint32_t kl = format_key(key, i);
        uint32_t vl = 8 + (uint32_t)rng_below(&rng, 56);
        for (uint32_t j = 0; j < vl; j++)
            val[j] = (char)('a' + rng_below(&rng, 26));
        set(&t, key, kl, val, vl);
    }
    for (int64_t i = 0; i < ops; i++) {
        uint64_t r = rng_next(&rng);
        /* skew: the product of two uniforms favours small key numbers */
        uint64_t a = rng_below(&rng, (uint64_t)keys), b = rng_below(&rng, (uint64_t)keys);
        int64_t k = (int64_t)(a * b / (uint64_t)keys);
        uint32_t kl = format_key(key, k);
        uint32_t kind = (uint32_t)(r % 100);
        if (kind < 70) {
            gets++;
            entry_t *e = lookup(&t, key, kl, str_hash(key, kl));
            if (e) {
                hits++;
                hash_bytes(&h, e->val, e->vlen);
            } else {
                hash_u64(&h, 0);
            }
        } else if (kind < 95) {
            sets++;
            uint32_t vl = 8 + (uint32_t)((r >> 8) % 120);
            for (uint32_t j = 0; j < vl; j++)
                val[j] = (char)('A' + (r >> (j % 40)) % 26 + (j & 1));
            set(&t, key, kl, val, vl);
        } else {
            dels++;
            int d = del(&t, key, kl);
            deleted += d;
            hash_u64(&h, (uint64_t)d + 7);
        }
    }
    hash_u64(&h, t.used);
    printf("kvstore: %" PRId64 " gets (%" PRId64 " hits), %" PRId64 " sets, %" PRId64
           " dels (%" PRId64 " removed), %" PRIu64 " keys at the end\n",
           gets, hits, sets, dels, deleted, t.used);
    print_checksum(&h);
    for (uint64_t i = 0; i <= t.mask; i++) {
        entry_t *e = t.slots[i];
        while (e) {
            entry_t *next = e->next;
            free(e->key);
            free(e->val);
            free(e);
            e = next;
        }
    }
    free(t.slots);
    return 0;
}
