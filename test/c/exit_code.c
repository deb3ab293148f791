/* Exit codes: returning from main, exit(n) with atexit handlers and
 * buffered output, and _Exit(n) which skips them. */
#include "common.h"
#include <unistd.h>

static void bye(void) { printf("atexit handler ran\n"); }

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "return";
    int code = argc > 2 ? atoi(argv[2]) : 0;
    atexit(bye);
    printf("exiting by %s with %d\n", how, code);
    if (strcmp(how, "exit") == 0) exit(code);
    if (strcmp(how, "_Exit") == 0) { fflush(stdout); _Exit(code); }
    return code;
}
