/* Arguments and environment (argv[0] differs between builds: skipped). */
#include "common.h"

extern char **environ;

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    printf("argc: %d\n", argc);
    for (int i = 1; i < argc; i++) printf("argv[%d]: '%s' (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is NULL: %d\n", argv[argc] == NULL);
    int n = 0;
    char *vars[256];
    for (char **e = environ; *e && n < 256; e++) vars[n++] = *e;
    qsort(vars, n, sizeof vars[0], cmp);
    printf("environ: %d entries\n", n);
    for (int i = 0; i < n; i++) printf("env: %s\n", vars[i]);
    const char *g = getenv("GREETING");
    printf("getenv GREETING: %s\n", g ? g : "(null)");
    printf("getenv MISSING: %s\n", getenv("MISSING") ? "set" : "(null)");
    setenv("ADDED", "later", 1);
    printf("setenv then getenv: %s\n", getenv("ADDED"));
    return 0;
}
