/* A long-running computation for the signal and timer triggers: prints
 * "started" (flushed) at once, then one checksum per round. argv[1] is the
 * number of rounds (default 40). */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

__attribute__((noinline)) static uint64_t round_hash(uint64_t h, unsigned r) {
    for (unsigned i = 0; i < 4000000; i++) h = (h ^ (i + r)) * 0x100000001b3ULL;
    return h;
}

int main(int argc, char **argv) {
    unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 40;
    printf("started\n");
    fflush(stdout);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned r = 0; r < rounds; r++) {
        h = round_hash(h, r);
        printf("round %u: %016llx\n", r, (unsigned long long)h);
    }
    return 0;
}
