/* Sleeps in nanosleep (poll_oneoff): a checkpoint taken during the sleep
 * must make the sleep again on restore. argv[1] is the sleep in ms
 * (default 1500). Exits with 3. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long ms = argc > 1 ? atol(argv[1]) : 1500;
    printf("before sleep\n");
    fflush(stdout);
    struct timespec req = {ms / 1000, (ms % 1000) * 1000000L};
    int r = nanosleep(&req, NULL);
    printf("after sleep: %d\n", r);
    return 3;
}
