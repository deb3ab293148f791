/* Randomness: getentropy fills buffers, two draws differ. */
#include "common.h"
#include <unistd.h>

int main(void) {
    unsigned char a[256], b[256], big[300];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    int ra = getentropy(a, sizeof a);
    int rb = getentropy(b, sizeof b);
    printf("getentropy: %s\n", ra == 0 && rb == 0 ? "ok" : "FAIL");
    int zeros = 0;
    for (size_t i = 0; i < sizeof a; i++) zeros += a[i] == 0;
    printf("not all zero: %s\n", zeros < 32 ? "ok" : "FAIL");
    /* Every byte compared, not memcmp: memcmp stops at the first
       difference, so its loop (and the run's probe count, which the
       checkpoint-everywhere tests replay) would follow the random bytes. */
    int differ = 0;
    for (size_t i = 0; i < sizeof a; i++) differ |= a[i] ^ b[i];
    printf("draws differ: %s\n", differ != 0 ? "ok" : "FAIL");
    /* Byte values spread over the range. */
    int seen[16] = {0};
    for (int round = 0; round < 16; round++) {
        getentropy(a, sizeof a);
        for (size_t i = 0; i < sizeof a; i++) seen[a[i] >> 4] = 1;
    }
    int buckets = 0;
    for (int i = 0; i < 16; i++) buckets += seen[i];
    printf("all nibbles seen: %s\n", buckets == 16 ? "ok" : "FAIL");
    errno = 0;
    printf("oversized request refused: %s\n", getentropy(big, 257) != 0 && errno == EIO ? "EIO" :
           errno == EINVAL ? "EINVAL" : "other");
    return 0;
}
