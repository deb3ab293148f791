/* Integer compute: a sieve, Collatz chains and a hash, printed in blocks
 * so that a checkpoint falls between lines as well as inside loops. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#define N 60000
static unsigned char composite[N + 1];

static unsigned collatz_len(uint64_t n) {
    unsigned len = 1;
    while (n != 1) {
        n = (n & 1) ? 3 * n + 1 : n / 2;
        len++;
    }
    return len;
}

int main(void) {
    memset(composite, 0, sizeof composite);
    for (unsigned i = 2; i * i <= N; i++)
        if (!composite[i])
            for (unsigned j = i * i; j <= N; j += i) composite[j] = 1;
    unsigned count = 0;
    for (unsigned i = 2; i <= N; i++) {
        if (!composite[i]) count++;
        if (i % 10000 == 0) printf("primes <= %u: %u\n", i, count);
    }
    for (unsigned block = 0; block < 5; block++) {
        unsigned best = 0, arg = 0;
        for (unsigned n = block * 2000 + 1; n <= (block + 1) * 2000; n++) {
            unsigned l = collatz_len(n);
            if (l > best) { best = l; arg = n; }
        }
        printf("collatz block %u: longest %u at %u\n", block, best, arg);
    }
    uint32_t h = 2166136261u;
    for (unsigned i = 0; i < 200000; i++) {
        h ^= i & 0xff;
        h *= 16777619u;
    }
    printf("fnv: %08x\n", h);
    return 0;
}
