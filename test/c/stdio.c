/* Standard streams: formatted output, stderr, and stdin read to its end. */
#include "common.h"
#include <ctype.h>

int main(void) {
    printf("hello from %s\n", "stdio");
    printf("ints %d %u %lld %x %05d\n", -42, 42u, 1234567890123LL, 0xbeef, 7);
    printf("floats %.3f %g %e\n", 3.14159, 0.5, 12345.678);
    fprintf(stderr, "this goes to stderr\n");
    char line[256];
    int n = 0;
    size_t bytes = 0;
    while (fgets(line, sizeof line, stdin)) {
        for (char *p = line; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        bytes += strlen(line);
        printf("%d: %s", ++n, line);
    }
    printf("read %d lines, %zu bytes, eof=%d\n", n, bytes, feof(stdin) != 0);
    /* Unbuffered write(2) after stdio output: flush first so order holds. */
    fflush(stdout);
    fputs("done\n", stdout);
    return 0;
}
